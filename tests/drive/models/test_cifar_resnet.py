"""CIFAR ResNet-18 and ResNet-20 (drive/models/cifar_resnet.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.errors import ModelError
from drive.models import build_model


def conv_bn(cin: int, cout: int, k: int = 3) -> int:
    """Parameters of a bias-free k x k conv followed by batch norm."""
    return k * k * cin * cout + 2 * cout


def resnet_params(in_channels: int, widths: list[int], blocks: int, classes: int) -> int:
    """Parameter count of a BasicBlock ResNet with a 3x3 stem, ``blocks`` blocks per stage and a
    1x1-conv projection wherever the channel count changes."""
    total = conv_bn(in_channels, widths[0])
    previous = widths[0]
    for width in widths:
        for _ in range(blocks):
            total += conv_bn(previous, width) + conv_bn(width, width)
            if previous != width:
                total += conv_bn(previous, width, k=1)
            previous = width
    return total + previous * classes + classes


def test_resnet18_has_a_cifar_stem_and_no_max_pool():
    model = build_model("resnet18", 10, 3, 32)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model.conv1.padding == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_resnet18_reaches_the_last_stage_at_4x4_for_32x32_inputs():
    model = build_model("resnet18", 10, 3, 32).eval()
    seen = {}
    model.layer4.register_forward_hook(lambda _m, _i, out: seen.update(shape=out.shape))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    assert seen["shape"] == (1, 512, 4, 4)


@pytest.mark.parametrize("classes, channels", [(10, 3), (100, 3), (7, 1)])
def test_resnet18_parameter_count(classes, channels):
    model = build_model("resnet18", classes, channels, 32)
    expected = resnet_params(channels, [64, 128, 256, 512], 2, classes)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_resnet18_has_the_known_11_17m_parameters():
    assert sum(p.numel() for p in build_model("resnet18", 10, 3, 32).parameters()) == 11_173_962


@pytest.mark.parametrize("width", [1, 2, 0.5])
def test_resnet20_parameter_count(width):
    model = build_model("resnet20", 10, 3, 32, width=width)
    widths = [round(c * width) for c in (16, 32, 64)]
    assert sum(p.numel() for p in model.parameters()) == resnet_params(3, widths, 3, 10)


def test_resnet20_structure():
    model = build_model("resnet20", 10, 3, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    three_by_three = [c for c in convs if c.kernel_size == (3, 3)]
    projections = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(three_by_three) == 19  # stem + 3 stages x 3 blocks x 2; plus the linear = 20 layers
    assert [(c.in_channels, c.out_channels, c.stride) for c in projections] == [
        (16, 32, (2, 2)), (32, 64, (2, 2))]
    assert sum(p.numel() for p in model.parameters()) == 272_474  # ~0.27M


def test_resnet20_rejects_a_bad_width():
    with pytest.raises(ModelError, match="^model_args: width"):
        build_model("resnet20", 10, 3, 32, width=0)


@pytest.mark.parametrize("name", ["resnet18", "resnet20"])
def test_small_images_work_down_to_8_and_smaller_ones_are_rejected(name):
    out = build_model(name, 10, 3, 8).eval()(torch.randn(1, 3, 8, 8))
    assert out.shape == (1, 10)
    with pytest.raises(ModelError, match="^model: .*image_size >= 8, got 4"):
        build_model(name, 10, 3, 4)
