"""drive.checked: numbers only as numbers, in every config and sweep section."""

import pytest

from drive.config import build_config
from drive.errors import ConfigError
from sweeps.spec import SweepError, load_spec


@pytest.mark.parametrize("tree,field", [
    ({"sparsity": False}, "sparsity"),          # `sparsity: no` would have been a dense run
    ({"seed": True}, "seed"),                   # `seed: yes` seed 1
    ({"train": {"epochs": True}}, "train.epochs"),
    ({"drive": {"weights": [True, 1, 1]}}, "drive.weights"),
    ({"prune_iterations": True}, "prune_iterations"),
])
def test_a_boolean_is_no_number(tree, field):
    with pytest.raises(ConfigError) as e:
        build_config(tree)
    assert e.value.problems == [f"{field}: must be a number, not a boolean, got {_value(tree)!r} "
                                "(YAML reads yes, no, on, off, true and false as booleans)"]


def _value(tree):
    while isinstance(tree, dict):
        tree = next(iter(tree.values()))
    return tree


@pytest.mark.parametrize("tree,field", [
    ({"train": {"lr": float("inf")}}, "train.lr"),
    ({"train": {"weight_decay": float("inf")}}, "train.weight_decay"),
    ({"grasp": {"temperature": float("inf")}}, "grasp.temperature"),
    ({"drive": {"weights": [float("nan"), 1, 1]}}, "drive.weights.0"),
])
def test_infinite_and_nan_numbers_are_refused(tree, field):
    with pytest.raises(ConfigError) as e:
        build_config(tree)
    assert e.value.problems == [f"{field}: Input should be a finite number"]


def test_boolean_fields_still_take_booleans():
    cfg = build_config({"train": {"nesterov": True, "compile": False}, "data": {"augment": False}})
    assert (cfg.train.nesterov, cfg.train.compile, cfg.data.augment) == (True, False, False)
    assert build_config({"train": {"compile": "auto"}}).train.compile == "auto"


def test_sweep_sections_check_numbers_too():
    with pytest.raises(SweepError, match=r"^search.num_samples: must be a number, not a boolean"):
        load_spec(tree={"search": {"num_samples": True}})
    with pytest.raises(SweepError, match=r"^resources.cpu: Input should be a finite number"):
        load_spec(tree={"resources": {"cpu": float("inf")}})
    assert load_spec(tree={"reuse_actors": False}).reuse_actors is False


def test_a_boolean_in_a_text_field_gets_pydantic_s_own_message():
    with pytest.raises(ConfigError) as e:
        build_config({"model": True})
    assert e.value.problems == ["model: Input should be a valid string"]
