"""Properties every registered model must have (drive/models/__init__.py)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from drive.models import MODELS, build_model

#: The sample shape each registered model is meant for; tv_resnet50 runs at 64 for speed.
INTENDED_INPUT = {
    "resnet18": (3, 32, 32),
    "resnet20": (3, 32, 32),
    "vgg16_bn": (3, 32, 32),
    "alexnet": (3, 32, 32),
    "digits_cnn": (1, 8, 8),
    "digits_mlp": (1, 8, 8),
    "mnist1d_cnn": (1, 40),
    "mnist1d_mlp": (1, 40),
    "tv_resnet18": (3, 64, 64),
    "tv_resnet50": (3, 64, 64),
}
MLPS = ("digits_mlp", "mnist1d_mlp")


def prunable(model: nn.Module) -> list[nn.Module]:
    """Conv and linear modules in registration order, as the pruning code finds them."""
    return [m for m in model.modules() if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))]


def build(name: str, num_classes: int, shape: tuple[int, ...]) -> nn.Module:
    """The model for samples of ``shape``, as the experiment builds it."""
    return build_model(name, num_classes, shape[0], shape[-1], sample_shape=shape)


def test_every_registered_model_has_an_intended_input():
    assert set(MODELS.names()) == set(INTENDED_INPUT)


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
@pytest.mark.parametrize("num_classes, channel_offset", [(10, 0), (7, 1)])
def test_forward_gives_one_logit_per_class(name, num_classes, channel_offset):
    shape = INTENDED_INPUT[name]
    shape = (shape[0] + channel_offset, *shape[1:])  # also an unusual channel count
    torch.manual_seed(0)
    model = build(name, num_classes, shape).eval()
    with torch.no_grad():
        out = model(torch.randn(2, *shape))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_registration_order_is_forward_order(name):
    """The first conv module is the stem, the last linear the classifier, and in between the
    prunable layers run in the order they are registered."""
    shape = INTENDED_INPUT[name]
    torch.manual_seed(0)
    model = build(name, 5, shape).eval()
    layers = prunable(model)
    called, outputs = [], {}

    def record(module, _inputs, output):
        called.append(module)
        outputs[module] = output

    for layer in layers:
        layer.register_forward_hook(record)
    with torch.no_grad():
        out = model(torch.randn(2, *shape))

    assert [id(m) for m in called] == [id(m) for m in layers]
    assert isinstance(layers[-1], nn.Linear) and layers[-1].out_features == 5
    assert torch.equal(outputs[layers[-1]], out)
    stem = layers[0]
    if name in MLPS:
        assert stem.in_features == math.prod(shape)
    else:
        conv = nn.Conv1d if len(shape) == 2 else nn.Conv2d
        assert isinstance(stem, conv) and stem.in_channels == shape[0]


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_parameters_live_only_in_plain_conv_linear_and_batchnorm(name):
    model = build(name, 10, INTENDED_INPUT[name])
    for module in model.modules():
        if list(module.parameters(recurse=False)):
            assert type(module) in (nn.Conv1d, nn.Conv2d, nn.Linear, nn.BatchNorm2d), type(module)


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_construction_is_deterministic_given_the_seed(name):
    def weights(seed):
        torch.manual_seed(seed)
        return build(name, 10, INTENDED_INPUT[name]).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(prunable_weight(first), prunable_weight(other))


def prunable_weight(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """All conv/linear weights (dims > 1) concatenated."""
    return torch.cat([v.flatten() for k, v in state.items() if k.endswith("weight") and v.dim() > 1])


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "resnet20", "mnist1d_cnn", "mnist1d_mlp"])
def test_a_few_sgd_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    shape = INTENDED_INPUT[name] if name.startswith("mnist1d") else INTENDED_INPUT[name][:1] + (8, 8)
    # Ten classes, each a fixed random prototype plus noise: learnable from a small batch.
    prototypes = torch.randn(10, *shape)
    labels = torch.arange(40) % 10
    inputs = prototypes[labels] + 0.3 * torch.randn(40, *shape)
    model = build(name, 10, shape)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def loss() -> torch.Tensor:
        return loss_fn(model(inputs), labels)

    with torch.no_grad():
        initial = loss().item()
    steps = 30 if name == "mnist1d_cnn" else 15  # torch's default init, as the paper's: a slower start
    for _ in range(steps):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss().item()
    assert final < 0.5 * initial, (initial, final)
