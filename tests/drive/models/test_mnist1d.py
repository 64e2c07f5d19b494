"""The 1-D models (drive/models/mnist1d.py), sample_shape in build_model, and every method
pruning Conv1d layers end to end on MNIST-1D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.config import build_config
from drive.errors import ConfigError, ModelError
from drive.experiment import Experiment
from drive.masks import keep_count
from drive.method import METHODS
from drive.models import build_model
from drive.models.mnist1d import conv_output_length


def signal_model(name: str, shape=(1, 40), classes=10, **model_args) -> nn.Module:
    return build_model(name, classes, shape[0], shape[-1], sample_shape=shape, **model_args)


def test_cnn_is_the_papers_conv_base():
    """Conv1d 1->25 (k5, s2, p1), 25->25 (k3, s2, p1) twice, ReLU, linear 125 -> 10: 5,210
    parameters, as Greydanus' ConvBase for signals of length 40."""
    model = signal_model("mnist1d_cnn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (1, 25, (5,), (2,), (1,)), (25, 25, (3,), (2,), (1,)), (25, 25, (3,), (2,), (1,))]
    assert [type(m) for m in model.features][1::2] == [nn.ReLU] * 3
    assert model.classifier.in_features == 125
    assert sum(p.numel() for p in model.parameters()) == 5_210


@pytest.mark.parametrize("shape", [(1, 40), (3, 24), (1, 3), (2, 101)])
def test_cnn_fits_any_signal_length_and_channel_count(shape):
    model = signal_model("mnist1d_cnn", shape, classes=7, channels=8).eval()
    out = model(torch.randn(5, *shape))
    assert out.shape == (5, 7) and torch.isfinite(out).all()
    assert model.features[0].in_channels == shape[0] and model.features[0].out_channels == 8


def test_conv_output_length_matches_torch():
    for length in range(3, 30):
        conv = nn.Conv1d(1, 1, 5, stride=2, padding=1)
        assert conv(torch.zeros(1, 1, length)).shape[-1] == conv_output_length(length, 5, 2, 1)


def test_mlps_flatten_the_signal():
    mlp = signal_model("mnist1d_mlp")
    linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(40, 100), (100, 100), (100, 10)]
    wide = signal_model("mnist1d_mlp", (2, 30), hidden=[64])
    assert wide(torch.randn(3, 2, 30)).shape == (3, 10)
    digits_mlp = signal_model("digits_mlp", (2, 30), hidden=[16])  # the digits MLP takes any shape
    assert digits_mlp(torch.randn(3, 2, 30)).shape == (3, 10)


@pytest.mark.parametrize("name", ["mnist1d_cnn", "mnist1d_mlp"])
def test_signal_models_refuse_images(name):
    with pytest.raises(ModelError, match=rf"^model: {name} takes 1-D signals \(C, L\), got samples of shape \(1, 8, 8\)"):
        build_model(name, 10, 1, 8)


def test_bad_cnn_arguments_are_model_errors():
    with pytest.raises(ModelError, match="^model: mnist1d_cnn needs signals of length >= 3, got 2"):
        signal_model("mnist1d_cnn", (1, 2))
    with pytest.raises(ModelError, match="^model_args: channels must be a positive integer, got 0"):
        signal_model("mnist1d_cnn", channels=0)
    with pytest.raises(ModelError, match=r"^model_args: unknown argument\(s\) width for model 'mnist1d_cnn'; "
                                         r"allowed: channels$"):
        signal_model("mnist1d_cnn", width=2)


def test_image_models_refuse_signals_with_one_line():
    with pytest.raises(ModelError, match=r"^model: 'digits_cnn' takes images \(C, H, W\); the data set's "
                                         r"samples are \(1, 40\)"):
        signal_model("digits_cnn")


def test_sample_shape_is_checked_and_reserved():
    with pytest.raises(ModelError, match="^model: sample_shape must be positive integers"):
        build_model("mnist1d_cnn", 10, 2, 40, sample_shape=(1, 40))  # C != in_channels
    with pytest.raises(ModelError, match="^model: sample_shape must be positive integers"):
        build_model("mnist1d_cnn", 10, 1, 40, sample_shape=(1, 0))
    with pytest.raises(ConfigError, match="^model_args: sample_shape is set from the data set"):
        build_config({"model": "mnist1d_cnn", "model_args": {"sample_shape": [1, 40]}})


FAST = {"dataset": "mnist1d", "model": "mnist1d_cnn", "device": "cpu", "sparsity": 0.9,
        "data": {"args": {"num_samples": 300}}, "train": {"epochs": 2, "batch_size": 64}}


#: Settings that keep a method's run short (every other method runs with its defaults).
SHORT = {"drive": {"warmup_epochs": 1, "prune_iterations": 3}, "synflow": {"prune_iterations": 5},
         "force": {"prune_iterations": 3}, "imp": {"sparsity": 0.5}}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_prunes_the_conv1d_network(method, tmp_path):
    """Conv1d weights are prunable and stay zero; SynFlow's all-ones probe is one (1, 40) signal."""
    cfg = build_config({**FAST, "method": method, **SHORT.get(method, {}),
                        "data": {**FAST["data"], "root": str(tmp_path)}})
    exp = Experiment(cfg)
    assert [n for n in exp.masks.keep] == ["features.0", "features.2", "features.4", "classifier"]
    m = exp.run()
    assert m["status"] == "finished" and 0 <= m["test_acc"] <= 1
    density = 1.0 if method == "dense" else 1 - cfg.sparsity
    assert m["params_remaining"] == keep_count(density, m["params_prunable"]) and m["params_prunable"] == 5_125
    for name, weight in exp.masks.weights.items():
        assert weight.dim() == (2 if name == "classifier" else 3)
        assert (weight[~exp.masks.keep[name]] == 0).all(), name
    if method in ("snip", "synflow", "drive", "grasp"):  # scored, so not all layers alike
        assert len(set(m["layer_density"].values())) > 1
