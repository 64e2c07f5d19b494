"""The digits models (drive/models/small.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.errors import ModelError
from drive.models import build_model


def prunable_weights(model: nn.Module) -> int:
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_digits_cnn_size_leaves_a_trainable_network_at_90_percent_sparsity():
    model = build_model("digits_cnn", 10, 1, 8)
    assert 50_000 <= prunable_weights(model) <= 150_000
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == [32, 64, 128]


@pytest.mark.parametrize("width, channels", [(0.5, [16, 32, 64]), (2, [64, 128, 256])])
def test_digits_cnn_width_scales_the_channels(width, channels):
    model = build_model("digits_cnn", 10, 1, 8, width=width)
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == channels


@pytest.mark.parametrize("size, channels", [(2, 1), (16, 3), (28, 1)])
def test_digits_cnn_accepts_other_small_images(size, channels):
    model = build_model("digits_cnn", 4, channels, size).eval()
    assert model(torch.randn(2, channels, size, size)).shape == (2, 4)


def test_digits_cnn_rejects_a_1x1_image():
    with pytest.raises(ModelError, match="^model: digits_cnn needs image_size >= 2"):
        build_model("digits_cnn", 10, 1, 1)


@pytest.mark.parametrize("hidden", [[256, 128], [32], []])
def test_digits_mlp_hidden_widths(hidden):
    model = build_model("digits_mlp", 10, 1, 8, hidden=hidden)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [f.out_features for f in linears] == [*hidden, 10]
    assert linears[0].in_features == 64
    assert model(torch.randn(3, 1, 8, 8)).shape == (3, 10)


def test_digits_mlp_default_is_256_128():
    linears = [m for m in build_model("digits_mlp", 10, 1, 8).modules() if isinstance(m, nn.Linear)]
    assert [(f.in_features, f.out_features) for f in linears] == [(64, 256), (256, 128), (128, 10)]


@pytest.mark.parametrize("hidden", [[0], "256", [1.5], 64])
def test_digits_mlp_rejects_bad_hidden(hidden):
    with pytest.raises(ModelError, match="^model_args: hidden must be a list of positive integers"):
        build_model("digits_mlp", 10, 1, 8, hidden=hidden)
