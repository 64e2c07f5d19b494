"""AlexNet adapted to 32x32 images (CIFAR), as used for the AlexNet results of pruning papers."""

from __future__ import annotations

import torch
from torch import nn

from drive.models.layers import conv_bn_relu, init_weights, scaled
from drive.models.registry import MODELS, check_image_size


class CifarAlexNet(nn.Module):
    """AlexNet's five convs and three linear layers, sized for 32x32 inputs.

    With ``width`` w (channel counts times w) and a 32x32 input::

        conv 3x3  in  ->  64w, BN, ReLU, max-pool 2x2   -> 16x16
        conv 3x3  64w -> 192w, BN, ReLU, max-pool 2x2   ->  8x8
        conv 3x3 192w -> 384w, BN, ReLU
        conv 3x3 384w -> 256w, BN, ReLU
        conv 3x3 256w -> 256w, BN, ReLU, max-pool 2x2   ->  4x4
        adaptive average pool to 4x4 (identity at 32x32), flatten  -> 4096w
        dropout, linear 4096w -> 1024w, ReLU
        dropout, linear 1024w -> 1024w, ReLU
        linear 1024w -> num_classes

    The convs are 3x3 with padding 1 and no bias (BN follows); the linears have biases.
    ``dropout`` is the drop probability before the two hidden linear layers (0 disables them).
    """

    def __init__(self, num_classes: int, in_channels: int, width: float = 1.0, dropout: float = 0.5):
        super().__init__()
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        c1, c2, c3, c4, c5 = (scaled(c, width) for c in (64, 192, 384, 256, 256))
        hidden = scaled(1024, width)
        self.features = nn.Sequential(
            conv_bn_relu(in_channels, c1), nn.MaxPool2d(2),
            conv_bn_relu(c1, c2), nn.MaxPool2d(2),
            conv_bn_relu(c2, c3),
            conv_bn_relu(c3, c4),
            conv_bn_relu(c4, c5), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(4)
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(c5 * 16, hidden), nn.ReLU(inplace=True),
            nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@MODELS.register("alexnet")
def alexnet(num_classes: int, in_channels: int, image_size: int, *, width: float = 1.0,
            dropout: float = 0.5) -> nn.Module:
    """CIFAR AlexNet (see :class:`CifarAlexNet`); inputs of at least 8x8 (three halvings)."""
    check_image_size("alexnet", image_size, 8)
    return CifarAlexNet(num_classes, in_channels, width, dropout)
