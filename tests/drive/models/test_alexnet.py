"""CIFAR AlexNet (drive/models/alexnet.py): the architecture its docstring documents."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.errors import ModelError
from drive.models import build_model


def test_alexnet_layers_match_the_documented_architecture():
    model = build_model("alexnet", 10, 3, 32)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [
        (3, 64), (64, 192), (192, 384), (384, 256), (256, 256)]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5
    assert [(f.in_features, f.out_features) for f in linears] == [(4096, 1024), (1024, 1024), (1024, 10)]
    with torch.no_grad():
        assert model.eval().features(torch.randn(1, 3, 32, 32)).shape == (1, 256, 4, 4)


def test_alexnet_width_and_dropout():
    model = build_model("alexnet", 10, 3, 32, width=0.5, dropout=0.0)
    assert [m.out_features for m in model.modules() if isinstance(m, nn.Linear)] == [512, 512, 10]
    assert all(m.p == 0 for m in model.modules() if isinstance(m, nn.Dropout))
    with pytest.raises(ModelError, match="^model_args: dropout"):
        build_model("alexnet", 10, 3, 32, dropout=1.5)


def test_alexnet_eval_is_deterministic_and_train_uses_dropout():
    torch.manual_seed(0)
    model = build_model("alexnet", 10, 3, 32)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))
