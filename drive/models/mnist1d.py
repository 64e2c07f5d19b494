"""Models for 1-D signals such as MNIST-1D (Greydanus 2020), small enough for CPU sweeps.

``mnist1d_cnn`` follows the paper's ConvBase: three strided 1-D convolutions with ReLU over the
signal, then one linear layer on the flattened features (about 5k weights at the default 25
channels and length 40). ``mnist1d_mlp`` is a plain MLP on the flattened signal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from drive.errors import ModelError
from drive.models.registry import MODELS
from drive.models.small import mlp

#: (kernel, stride, padding) of the three convolutions, as in the MNIST-1D paper's ConvBase.
CONV_LAYERS = ((5, 2, 1), (3, 2, 1), (3, 2, 1))


def conv_output_length(length: int, kernel: int, stride: int, padding: int) -> int:
    """Length of a ``Conv1d`` output (dilation 1)."""
    return (length + 2 * padding - kernel) // stride + 1


class Mnist1dCNN(nn.Module):
    """Conv1d(C -> c, 5, stride 2, pad 1), Conv1d(c -> c, 3, 2, 1) twice, each followed by ReLU;
    flatten; linear to the classes. PyTorch's default initialisation, as in the paper."""

    def __init__(self, num_classes: int, in_channels: int, length: int, channels: int = 25):
        super().__init__()
        layers: list[nn.Module] = []
        previous = in_channels
        for kernel, stride, padding in CONV_LAYERS:
            layers += [nn.Conv1d(previous, channels, kernel, stride=stride, padding=padding),
                       nn.ReLU(inplace=True)]
            previous = channels
            length = conv_output_length(length, kernel, stride, padding)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(channels * length, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def _signal_length(model: str, sample_shape: Sequence[int] | None) -> int:
    """L of a ``(C, L)`` sample; :class:`ModelError` for any other shape."""
    if sample_shape is None or len(sample_shape) != 2:
        raise ModelError(f"model: {model} takes 1-D signals (C, L), got samples of shape {sample_shape}")
    return sample_shape[1]


@MODELS.register("mnist1d_cnn")
def mnist1d_cnn(num_classes: int, in_channels: int, image_size: int, *,
                sample_shape: Sequence[int] | None = None, channels: int = 25) -> nn.Module:
    """1-D CNN (see :class:`Mnist1dCNN`) for signals ``(C, L)`` with ``L >= 3``."""
    length = _signal_length("mnist1d_cnn", sample_shape)
    if length < 3:
        raise ModelError(f"model: mnist1d_cnn needs signals of length >= 3, got {length}")
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
        raise ValueError(f"channels must be a positive integer, got {channels!r}")
    return Mnist1dCNN(num_classes, in_channels, length, channels)


@MODELS.register("mnist1d_mlp")
def mnist1d_mlp(num_classes: int, in_channels: int, image_size: int, *,
                sample_shape: Sequence[int] | None = None,
                hidden: Sequence[int] = (100, 100)) -> nn.Module:
    """MLP on the flattened signal ``(C, L)``: ``Linear -> ReLU`` per width in ``hidden`` (100
    as in the paper's MLP, here without its residual connection), then a linear classifier."""
    length = _signal_length("mnist1d_mlp", sample_shape)
    return mlp(num_classes, in_channels * length, hidden)
