"""Building blocks and initialisation shared by the hand-written models."""

from __future__ import annotations

from numbers import Real

from torch import nn


def scaled(channels: int, width: float) -> int:
    """``channels`` times the width multiplier, rounded, at least 1."""
    if isinstance(width, bool) or not isinstance(width, Real) or not width > 0:
        raise ValueError(f"width must be a positive number, got {width!r}")
    return max(1, round(channels * width))


def conv_bn_relu(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution (no bias, BN follows), batch norm, ReLU; keeps the size at stride 1."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


def init_weights(model: nn.Module) -> nn.Module:
    """He (kaiming-normal, fan-out) init for convs as torchvision does, BN to identity,
    zero conv biases; linear layers keep torch's default init. Returns ``model``."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def replace_conv(conv: nn.Conv2d, in_channels: int, kernel_size: int | None = None,
                 stride: int | None = None, padding: int | None = None) -> nn.Conv2d:
    """A freshly initialised conv like ``conv`` (same outputs and bias) with other input
    channels and, optionally, another kernel size, stride or padding; used to adapt stems."""
    new = nn.Conv2d(
        in_channels, conv.out_channels,
        kernel_size=kernel_size if kernel_size is not None else conv.kernel_size,
        stride=stride if stride is not None else conv.stride,
        padding=padding if padding is not None else conv.padding,
        bias=conv.bias is not None,
    )
    return init_weights(new)
