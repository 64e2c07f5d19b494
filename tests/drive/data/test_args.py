"""data.args (drive/data/args.py): options reach any data set factory, checked when it has a schema."""

from __future__ import annotations

import textwrap

import pytest

from drive.config import DataConfig, apply_overrides, build_config
from drive.data import load_dataset, prepare_dataset
from drive.errors import DataError

PLUGIN = """
import torch
from pydantic import Field

from drive.data import ImageData
from drive.data.args import DataArgs, dataset_args, takes_args


class NoiseArgs(DataArgs):
    num_samples: int = Field(8, ge=2)
    length: int = Field(16, ge=1)


def _signals(n, length, fill):
    x = torch.full((n, 1, length), float(fill))
    y = torch.arange(n) % 2
    return ImageData(x, y, x[:2], y[:2], num_classes=2, mean=(0.0,), std=(1.0,))


@takes_args(NoiseArgs)
def checked(cfg):
    args = dataset_args(cfg, NoiseArgs, "checked")
    return _signals(args.num_samples, args.length, 0)


def unchecked(cfg):
    return _signals(4, 8, cfg.args.get("fill", 0))
"""


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_signal_data.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_signal_data"


def test_args_reach_a_plugin_with_a_schema(plugin):
    data = load_dataset(f"{plugin}:checked", DataConfig(args={"num_samples": 6, "length": 5}))
    assert (data.num_train, data.sample_shape) == (6, (1, 5))
    assert load_dataset(f"{plugin}:checked", DataConfig()).num_train == 8  # the schema's defaults


def test_a_schema_rejects_unknown_and_invalid_keys_before_the_factory_runs(plugin):
    with pytest.raises(DataError) as err:
        prepare_dataset(f"{plugin}:checked", DataConfig(args={"num_samples": 1, "lenght": 5}))
    assert str(err.value) == (f"data.args.num_samples: Input should be greater than or equal to 2; "
                              f"data.args.lenght: unknown option of dataset {plugin}:checked; "
                              f"allowed: num_samples, length")


def test_a_plugin_without_a_schema_gets_the_mapping_as_it_is(plugin):
    data = load_dataset(f"{plugin}:unchecked", DataConfig(args={"fill": 3, "anything": [1, 2]}))
    assert float(data.train_images[0, 0, 0]) == 3.0


def test_builtin_without_options_rejects_any():
    with pytest.raises(DataError, match=r"^data.args.width: dataset digits takes no options"):
        load_dataset("digits", DataConfig(args={"width": 2}))


def test_args_come_from_config_files_and_dotted_overrides():
    tree = {"dataset": "mnist1d", "data": {"args": {"padding": [1, 2]}}}
    cfg = build_config(apply_overrides(tree, ["data.args.num_samples=500"]))
    assert cfg.data.args == {"num_samples": 500, "padding": [1, 2]}
    assert DataConfig().args == {}
