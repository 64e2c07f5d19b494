"""The train section: the optimiser's fields and their one-line errors."""

import pytest

from drive.config import TrainConfig, build_config
from drive.errors import ConfigError
from drive.train_config import NO_DECAY


def errors_of(train: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config({"train": train})
    return info.value.problems


def test_defaults_are_sgd_with_decay_on_every_parameter_and_adamw_fields_at_torch_defaults():
    cfg = TrainConfig()
    assert (cfg.optimizer, cfg.no_decay) == ("sgd", [])
    assert cfg.betas == (0.9, 0.999) and cfg.eps == 1e-8
    assert NO_DECAY == ("bn", "bias")


def test_adamw_fields_round_trip_through_the_resolved_config():
    cfg = build_config({"train": {"optimizer": "adamw", "betas": [0.8, 0.99], "eps": 1e-6,
                                  "no_decay": ["bias", "bn"]}})
    dumped = cfg.model_dump(mode="json")["train"]
    assert dumped["optimizer"] == "adamw" and dumped["betas"] == [0.8, 0.99]
    assert build_config({"train": dumped}).train == cfg.train


@pytest.mark.parametrize("train,line", [
    ({"optimizer": "adam"}, "train.optimizer: Input should be 'sgd' or 'adamw'"),
    ({"betas": [0.9]}, "train.betas: must be two numbers in [0, 1), e.g. [0.9, 0.999], got [0.9]"),
    ({"betas": [0.9, 1.0]}, "train.betas: must be two numbers in [0, 1)"),
    ({"betas": [True, 0.9]}, "train.betas: must be two numbers in [0, 1)"),
    ({"betas": 0.9}, "train.betas: must be two numbers in [0, 1)"),
    ({"eps": 0}, "train.eps: Input should be greater than 0"),
    ({"no_decay": ["weights"]}, "train.no_decay.0: Input should be 'bn' or 'bias'"),
    ({"no_decay": "bias"}, "train.no_decay: Input should be a valid list"),
    ({"no_decay": ["bias", "bias"]}, "train.no_decay: names a group twice (bias, bias); allowed: bn, bias"),
])
def test_each_bad_optimiser_field_is_one_line_naming_it(train, line):
    problems = errors_of(train)
    assert len(problems) == 1 and "\n" not in problems[0], problems
    assert problems[0].startswith(line), problems
