"""VGG-16-BN with one classifier layer (drive/models/vgg.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.errors import ModelError
from drive.models import build_model

CHANNELS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def test_vgg16_bn_has_13_convs_with_bn_and_exactly_one_linear():
    model = build_model("vgg16_bn", 10, 3, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == CHANNELS
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 13
    assert len(linears) == 1 and (linears[0].in_features, linears[0].out_features) == (512, 10)


@pytest.mark.parametrize("classes, channels", [(10, 3), (100, 1)])
def test_vgg16_bn_parameter_count(classes, channels):
    expected, previous = 0, channels
    for c in CHANNELS:
        expected += 9 * previous * c + c + 2 * c  # conv weight and bias, BN
        previous = c
    expected += 512 * classes + classes
    model = build_model("vgg16_bn", classes, channels, 32)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_vgg16_bn_feature_map_is_1x1_at_32x32_and_larger_inputs_work():
    model = build_model("vgg16_bn", 10, 3, 64).eval()
    with torch.no_grad():
        assert model.features(torch.randn(1, 3, 32, 32)).shape == (1, 512, 1, 1)
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_vgg16_bn_rejects_images_smaller_than_32():
    with pytest.raises(ModelError, match=r"^model: vgg16_bn needs image_size >= 32, got 16$"):
        build_model("vgg16_bn", 10, 3, 16)
