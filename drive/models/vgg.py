"""VGG-16 with batch norm for small images, with the single classifier layer of the pruning
literature (SNIP, GraSP, SynFlow) instead of ImageNet VGG's three."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.vgg import cfgs, make_layers

from drive.models.layers import init_weights, replace_conv
from drive.models.registry import MODELS, check_image_size


class CifarVGG(nn.Module):
    """torchvision's VGG feature extractor (3x3 convs with BN and ReLU, five 2x2 max-pools),
    global average pooling (a no-op on the 1x1 map of a 32x32 input) and one linear layer."""

    def __init__(self, config: str, num_classes: int, in_channels: int):
        super().__init__()
        self.features = make_layers(cfgs[config], batch_norm=True)
        if in_channels != 3:
            self.features[0] = replace_conv(self.features[0], in_channels)
        self.pool = nn.AdaptiveAvgPool2d(1)
        last_channels = [v for v in cfgs[config] if v != "M"][-1]
        self.classifier = nn.Linear(last_channels, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@MODELS.register("vgg16_bn")
def vgg16_bn(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """VGG-16-BN: 13 convs (64-64-M-128-128-M-256x3-M-512x3-M-512x3-M), then Linear(512, classes);
    14,728,266 parameters for 10 classes. Needs inputs of at least 32x32 (five halvings)."""
    check_image_size("vgg16_bn", image_size, 32)
    return CifarVGG("D", num_classes, in_channels)
