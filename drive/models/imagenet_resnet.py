"""torchvision's ImageNet ResNets, unchanged apart from the class count and input channels
(for Tiny ImageNet at 64x64 and ImageNet at 224x224)."""

from __future__ import annotations

from torch import nn
from torchvision.models import get_model

from drive.models.layers import replace_conv
from drive.models.registry import MODELS, check_image_size


def torchvision_resnet(arch: str, num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """torchvision's ``arch`` (e.g. "resnet18") with random weights; the 7x7 stride-2 stem conv
    is replaced by a fresh one when ``in_channels != 3``. Needs inputs of at least 32x32 (the
    network downsamples 32 times)."""
    check_image_size(f"tv_{arch}", image_size, 32)
    model = get_model(arch, weights=None, num_classes=num_classes)
    if in_channels != 3:
        model.conv1 = replace_conv(model.conv1, in_channels)
    return model


@MODELS.register("tv_resnet18")
def tv_resnet18(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """torchvision's ResNet-18 (11.7M parameters for 1000 classes)."""
    return torchvision_resnet("resnet18", num_classes, in_channels, image_size)


@MODELS.register("tv_resnet50")
def tv_resnet50(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """torchvision's ResNet-50 (25.6M parameters for 1000 classes)."""
    return torchvision_resnet("resnet50", num_classes, in_channels, image_size)
