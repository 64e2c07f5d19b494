"""ResNets for small (CIFAR-sized) images: ResNet-18 with a CIFAR stem and He et al.'s ResNet-20."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models.resnet import BasicBlock

from drive.models.layers import conv_bn_relu, init_weights, replace_conv, scaled
from drive.models.registry import MODELS, check_image_size


@MODELS.register("resnet18")
def resnet18(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """CIFAR ResNet-18: torchvision's resnet18 with a 3x3 stride-1 stem conv and no max-pool,
    so a 32x32 image reaches the last stage at 4x4 (11,173,962 parameters for 10 classes)."""
    check_image_size("resnet18", image_size, 8)
    model = tv_resnet18(weights=None, num_classes=num_classes)
    # Assigning to an existing attribute keeps the module's place in registration order.
    model.conv1 = replace_conv(model.conv1, in_channels, kernel_size=3, stride=1, padding=1)
    model.maxpool = nn.Identity()
    return model


class CifarResNet(nn.Module):
    """He et al. (2016) CIFAR ResNet of depth 6n+2: a 3x3 stem conv, three stages of n
    BasicBlocks at 16/32/64 (times ``width``) channels, the last two starting with stride 2 and a
    1x1-conv + BN projection shortcut, global average pooling and one linear classifier."""

    def __init__(self, depth: int, num_classes: int, in_channels: int, width: float = 1.0):
        super().__init__()
        if (depth - 2) % 6 or depth < 8:
            raise ValueError(f"depth must be 6n+2 with n >= 1, got {depth}")
        blocks = (depth - 2) // 6
        channels = [scaled(c, width) for c in (16, 32, 64)]
        self.stem = conv_bn_relu(in_channels, channels[0])
        stages, previous = [], channels[0]
        for i, planes in enumerate(channels):
            stages.append(self._stage(previous, planes, blocks, stride=1 if i == 0 else 2))
            previous = planes
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(previous, num_classes)
        init_weights(self)

    @staticmethod
    def _stage(inplanes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        shortcut = None
        if stride != 1 or inplanes != planes:
            shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                     nn.BatchNorm2d(planes))
        layers = [BasicBlock(inplanes, planes, stride, shortcut)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


@MODELS.register("resnet20")
def resnet20(num_classes: int, in_channels: int, image_size: int, *, width: float = 1.0) -> nn.Module:
    """He et al.'s CIFAR ResNet-20 (0.27M parameters at width 1); ``width`` scales the channels."""
    check_image_size("resnet20", image_size, 8)
    return CifarResNet(20, num_classes, in_channels, width)
