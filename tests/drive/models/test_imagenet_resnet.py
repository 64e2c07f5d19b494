"""torchvision's ResNets (drive/models/imagenet_resnet.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.errors import ModelError
from drive.models import build_model


@pytest.mark.parametrize("name, params", [("tv_resnet18", 11_689_512), ("tv_resnet50", 25_557_032)])
def test_imagenet_parameter_counts_are_torchvisions(name, params):
    model = build_model(name, 1000, 3, 224)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)


def test_other_input_channels_replace_the_stem():
    model = build_model("tv_resnet18", 200, 1, 64).eval()
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert model.fc.out_features == 200
    with torch.no_grad():
        assert model(torch.randn(2, 1, 64, 64)).shape == (2, 200)


def test_images_below_32_are_rejected():
    with pytest.raises(ModelError, match="^model: tv_resnet50 needs image_size >= 32"):
        build_model("tv_resnet50", 10, 3, 16)
