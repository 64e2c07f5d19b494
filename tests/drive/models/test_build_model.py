"""build_model, the registry and user models given by import path (drive/models/registry.py)."""

from __future__ import annotations

import textwrap
import uuid

import pytest
import torch

from drive.errors import ModelError
from drive.models import MODELS, build_model

USER_MODULE = """
    from torch import nn

    def tiny(num_classes, in_channels, image_size, *, hidden=16):
        return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, hidden),
                             nn.ReLU(), nn.Linear(hidden, num_classes))

    def anything(num_classes, in_channels, image_size, **kwargs):
        return tiny(num_classes, in_channels, image_size)

    def not_a_module(num_classes, in_channels, image_size):
        return 42

    def fails(num_classes, in_channels, image_size, *, size=1):
        raise ValueError("size must be even, got 1")

    def bad_signature(num_classes):
        return nn.Linear(1, num_classes)

    def shaped(num_classes, in_channels, image_size, *, sample_shape, hidden=4):
        features = 1
        for d in sample_shape:
            features *= d
        model = nn.Sequential(nn.Flatten(), nn.Linear(features, hidden), nn.Linear(hidden, num_classes))
        model.seen = (in_channels, image_size, sample_shape)
        return model

    NOT_CALLABLE = 3
"""


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> str:
    """A user's module on sys.path (a fresh name, so no other test's import is reused)."""
    name = f"user_models_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(USER_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_registered_names():
    assert MODELS.names() == sorted(["resnet18", "resnet20", "vgg16_bn", "alexnet", "digits_cnn",
                                     "digits_mlp", "mnist1d_cnn", "mnist1d_mlp", "tv_resnet18",
                                     "tv_resnet50"])


def test_import_path_model_builds_like_a_builtin(user_module):
    torch.manual_seed(3)
    model = build_model(f"{user_module}:tiny", 10, 1, 8, hidden=32)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    assert model[1].out_features == 32
    torch.manual_seed(3)
    again = build_model(f"{user_module}:tiny", 10, 1, 8, hidden=32)
    assert torch.equal(model[1].weight, again[1].weight)
    anything = build_model(f"{user_module}:anything", 3, 1, 4, whatever=1)
    assert anything(torch.randn(1, 1, 4, 4)).shape == (1, 3)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ModelError) as info:
        build_model("resnet99", 10, 3, 32)
    message = str(info.value)
    assert message.startswith("model: ") and "\n" not in message
    assert "'resnet99'" in message and all(name in message for name in MODELS.names())
    assert "package.module:factory" in message


def test_unknown_keyword_names_model_args_and_what_is_allowed():
    with pytest.raises(ModelError, match=r"^model_args: unknown argument\(s\) depth for model 'resnet20'; "
                                         r"allowed: width$"):
        build_model("resnet20", 10, 3, 32, depth=56)
    with pytest.raises(ModelError, match=r"^model_args: .* for model 'vgg16_bn'; allowed: none$"):
        build_model("vgg16_bn", 10, 3, 32, width=2)


def test_model_error_is_a_value_error():
    assert issubclass(ModelError, ValueError)


@pytest.mark.parametrize("suffix, message", [
    ("not_a_module", r"^model: '.*:not_a_module' returned int, not a torch.nn.Module$"),
    ("fails", r"^model_args: size must be even, got 1 \(model '.*:fails'\)$"),
    ("bad_signature", r"^model: factory of '.*:bad_signature' must accept"),
    ("NOT_CALLABLE", r"^model: .* does not name a callable"),
    ("missing", r"^model: .* does not name a callable"),
])
def test_broken_user_factories_give_one_line_errors(user_module, suffix, message):
    with pytest.raises(ModelError, match=message) as info:
        build_model(f"{user_module}:{suffix}", 10, 1, 8)
    assert "\n" not in str(info.value)


def test_unimportable_module():
    with pytest.raises(ModelError, match="^model: cannot import module 'no_such_pkg_xyz'"):
        build_model("no_such_pkg_xyz:factory", 10, 3, 32)


@pytest.mark.parametrize("field, args", [("num_classes", (0, 3, 32)), ("in_channels", (10, 1.5, 32)),
                                         ("image_size", (10, 3, -1))])
def test_bad_shapes_name_their_field(field, args):
    with pytest.raises(ModelError, match=f"^model: {field} must be a positive integer"):
        build_model("resnet20", *args)


def test_wrongly_typed_width_is_a_model_args_error():
    with pytest.raises(ModelError, match="^model_args: width must be a positive number, got 'wide'"):
        build_model("digits_cnn", 10, 1, 8, width="wide")


def test_a_factory_that_names_sample_shape_gets_it(user_module):
    """Signals and non-square images reach factories that declare ``sample_shape``; without the
    argument the shape is the square default."""
    signal = build_model(f"{user_module}:shaped", 10, 2, 40, sample_shape=(2, 40), hidden=8)
    assert signal.seen == (2, 40, (2, 40)) and signal(torch.randn(3, 2, 40)).shape == (3, 10)
    wide = build_model(f"{user_module}:shaped", 10, 3, 6, sample_shape=[3, 6, 10])
    assert wide.seen == (3, 6, (3, 6, 10)) and wide(torch.randn(1, 3, 6, 10)).shape == (1, 10)
    assert build_model(f"{user_module}:shaped", 10, 1, 8).seen == (1, 8, (1, 8, 8))


def test_a_factory_without_sample_shape_takes_images_only(user_module):
    """Existing factories are called as before: (C, H, W) images, ``image_size`` the height."""
    tiny = build_model(f"{user_module}:tiny", 10, 1, 8, sample_shape=(1, 8, 8))
    assert tiny(torch.randn(2, 1, 8, 8)).shape == (2, 10)
    with pytest.raises(ModelError, match=r"^model: '.*:tiny' takes images \(C, H, W\); the data set's "
                                         r"samples are \(1, 40\)"):
        build_model(f"{user_module}:tiny", 10, 1, 40, sample_shape=(1, 40))
