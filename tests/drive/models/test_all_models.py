"""Properties every registered model must have (drive/models/__init__.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from drive.models import MODELS, build_model

#: (image_size, in_channels) each registered model is meant for; tv_resnet50 runs at 64 for speed.
INTENDED_INPUT = {
    "resnet18": (32, 3),
    "resnet20": (32, 3),
    "vgg16_bn": (32, 3),
    "alexnet": (32, 3),
    "digits_cnn": (8, 1),
    "digits_mlp": (8, 1),
    "tv_resnet18": (64, 3),
    "tv_resnet50": (64, 3),
}


def prunable(model: nn.Module) -> list[nn.Module]:
    """Conv and linear modules in registration order, as the pruning code finds them."""
    return [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def test_every_registered_model_has_an_intended_input():
    assert set(MODELS.names()) == set(INTENDED_INPUT)


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
@pytest.mark.parametrize("num_classes, channel_offset", [(10, 0), (7, 1)])
def test_forward_gives_one_logit_per_class(name, num_classes, channel_offset):
    size, channels = INTENDED_INPUT[name]
    channels += channel_offset  # also an unusual channel count
    torch.manual_seed(0)
    model = build_model(name, num_classes, channels, size).eval()
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_registration_order_is_forward_order(name):
    """The first conv module is the stem, the last linear the classifier, and in between the
    prunable layers run in the order they are registered."""
    size, channels = INTENDED_INPUT[name]
    torch.manual_seed(0)
    model = build_model(name, 5, channels, size).eval()
    layers = prunable(model)
    called, outputs = [], {}

    def record(module, _inputs, output):
        called.append(module)
        outputs[module] = output

    for layer in layers:
        layer.register_forward_hook(record)
    with torch.no_grad():
        out = model(torch.randn(2, channels, size, size))

    assert [id(m) for m in called] == [id(m) for m in layers]
    assert isinstance(layers[-1], nn.Linear) and layers[-1].out_features == 5
    assert torch.equal(outputs[layers[-1]], out)
    stem = layers[0]
    if name == "digits_mlp":
        assert stem.in_features == channels * size * size
    else:
        assert isinstance(stem, nn.Conv2d) and stem.in_channels == channels


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_parameters_live_only_in_plain_conv_linear_and_batchnorm(name):
    size, channels = INTENDED_INPUT[name]
    model = build_model(name, 10, channels, size)
    for module in model.modules():
        if list(module.parameters(recurse=False)):
            assert type(module) in (nn.Conv2d, nn.Linear, nn.BatchNorm2d), type(module)


@pytest.mark.parametrize("name", sorted(INTENDED_INPUT))
def test_construction_is_deterministic_given_the_seed(name):
    size, channels = INTENDED_INPUT[name]

    def weights(seed):
        torch.manual_seed(seed)
        return build_model(name, 10, channels, size).state_dict()

    first, again, other = weights(1), weights(1), weights(2)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(prunable_weight(first), prunable_weight(other))


def prunable_weight(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """All conv/linear weights (dims > 1) concatenated."""
    return torch.cat([v.flatten() for k, v in state.items() if k.endswith("weight") and v.dim() > 1])


@pytest.mark.parametrize("name", ["digits_cnn", "digits_mlp", "resnet20"])
def test_a_few_sgd_steps_reduce_the_loss(name):
    torch.manual_seed(0)
    size = 8
    channels = INTENDED_INPUT[name][1]
    # Ten classes, each a fixed random prototype plus noise: learnable from a small batch.
    prototypes = torch.randn(10, channels, size, size)
    labels = torch.arange(40) % 10
    inputs = prototypes[labels] + 0.3 * torch.randn(40, channels, size, size)
    model = build_model(name, 10, channels, size)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def loss() -> torch.Tensor:
        return loss_fn(model(inputs), labels)

    with torch.no_grad():
        initial = loss().item()
    for _ in range(15):
        optimizer.zero_grad()
        value = loss()
        value.backward()
        optimizer.step()
    with torch.no_grad():
        final = loss().item()
    assert final < 0.5 * initial, (initial, final)
