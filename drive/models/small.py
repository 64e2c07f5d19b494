"""Small models for scikit-learn's 8x8 handwritten digits (the demo), fast enough for CPU."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from drive.models.layers import conv_bn_relu, init_weights, scaled
from drive.models.registry import MODELS, check_image_size


class DigitsCNN(nn.Module):
    """conv 3x3 -> 32w, conv 3x3 -> 64w, max-pool 2x2, conv 3x3 -> 128w (each with BN and ReLU),
    global average pooling, linear 128w -> classes. About 94k weights at width 1, so that 90%
    sparsity still leaves a network that trains."""

    def __init__(self, num_classes: int, in_channels: int, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (scaled(c, width) for c in (32, 64, 128))
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1),
            conv_bn_relu(c1, c2),
            nn.MaxPool2d(2),
            conv_bn_relu(c2, c3),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(c3, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


@MODELS.register("digits_cnn")
def digits_cnn(num_classes: int, in_channels: int, image_size: int, *, width: float = 1.0) -> nn.Module:
    """Small CNN (see :class:`DigitsCNN`) for 8x8 digits or any image of at least 2x2."""
    check_image_size("digits_cnn", image_size, 2)
    return DigitsCNN(num_classes, in_channels, width)


@MODELS.register("digits_mlp")
def digits_mlp(num_classes: int, in_channels: int, image_size: int, *,
               sample_shape: Sequence[int] | None = None,
               hidden: Sequence[int] = (256, 128)) -> nn.Module:
    """MLP (see :func:`mlp`) on samples of any shape (images, signals), flattened."""
    shape = sample_shape or (in_channels, image_size, image_size)
    return mlp(num_classes, math.prod(shape), hidden)


def mlp(num_classes: int, in_features: int, hidden: Sequence[int]) -> nn.Sequential:
    """Flatten, then ``Linear -> ReLU`` for each width in ``hidden``, then a linear classifier
    (an empty ``hidden`` gives multinomial logistic regression)."""
    if isinstance(hidden, (str, bytes)) or not isinstance(hidden, Sequence) or not all(
            isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in hidden):
        raise ValueError(f"hidden must be a list of positive integers, got {hidden!r}")
    layers: list[nn.Module] = [nn.Flatten()]
    previous = in_features
    for width in hidden:
        layers += [nn.Linear(previous, width), nn.ReLU(inplace=True)]
        previous = width
    layers.append(nn.Linear(previous, num_classes))
    return nn.Sequential(*layers)
