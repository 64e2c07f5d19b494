"""MNIST-1D (Greydanus 2020): ten 1-D digit templates, padded, scaled, translated, sheared and
noised into signals of length 40; 4,000 train and 1,000 test signals with the defaults.

Generated offline by the ``mnist1d`` package's own generator (``mnist1d.data.make_dataset``;
its ``get_dataset`` would download a pickle, which is never used here) with the package's
default arguments, seeded by them (``seed: 42``). Every argument of the generator can be set
in ``data.args`` under the package's name (:class:`Mnist1dArgs`), e.g.
``data.args: {num_samples: 10000}``. The generated float32 ``(N, 1, L)`` signals are cached in
``data.root/mnist1d/`` in one file per set of arguments (and package version), written
atomically, so a sweep generates them once. Not augmented by default (as in the paper); with
``data.augment: true`` a random shift of up to 4 samples (``data.crop_padding``).
"""

from __future__ import annotations

import hashlib
import json
import random
import types
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, field_validator

from drive.config import DataConfig
from drive.data.args import DataArgs, dataset_args, takes_args
from drive.data.base import DATASETS, ImageData, channel_stats
from drive.data.cache import load_or_build
from drive.errors import DataError

NUM_CLASSES = 10
FOLDER = "mnist1d"


class Mnist1dArgs(DataArgs):
    """The arguments of ``mnist1d.data.make_dataset``, with the package's defaults (tested)."""

    num_samples: int = Field(5000, ge=10, description="signals in all, split into train and test")
    train_split: float = Field(0.8, gt=0, lt=1, description="train share")
    template_len: int = Field(12, ge=1, description="template length before padding")
    padding: tuple[int, int] = Field((36, 60), description="[low, high] zeros appended before resampling")
    scale_coeff: float = Field(0.4, ge=0, description="random scaling by 1 +- scale_coeff / 2")
    max_translation: int = Field(48, ge=1, description="random circular shift in [0, max_translation)")
    corr_noise_scale: float = Field(0.25, ge=0, description="correlated background noise")
    iid_noise_scale: float = Field(2e-2, ge=0, description="per-sample Gaussian noise")
    shear_scale: float = Field(0.75, ge=0, description="random linear shear")
    shuffle_seq: bool = Field(False, description="permute the positions (a fixed random permutation)")
    final_seq_length: int = Field(40, ge=3, description="length L of the signals")
    seed: int = Field(42, ge=0, lt=2**32, description="seed of the generator")

    @field_validator("padding")
    @classmethod
    def _low_high(cls, v: tuple[int, int]) -> tuple[int, int]:
        if not 0 <= v[0] <= v[1]:
            raise ValueError(f"must be [low, high] with 0 <= low <= high, got {list(v)}")
        return v


@DATASETS.register("mnist1d")
@takes_args(Mnist1dArgs)
def mnist1d(cfg: DataConfig) -> ImageData:
    """MNIST-1D as ImageData: float32 ``(N, 1, final_seq_length)`` signals, 10 classes."""
    args = dataset_args(cfg, Mnist1dArgs, "mnist1d")
    total = args.num_samples // NUM_CLASSES * NUM_CLASSES
    if not 0 < int(total * args.train_split) < total:
        raise DataError(f"data.args.train_split: {args.train_split} of {total} signals leaves an empty "
                        "train or test set")
    key = {"args": args.model_dump(mode="json"), "mnist1d": package_version()}
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    path = Path(cfg.root).expanduser() / FOLDER / f"mnist1d-{digest}.pt"
    data = load_or_build(path, lambda saved: saved.get("key") == key,
                         lambda: {"key": key, **generate(args)}, "MNIST-1D")
    mean, std = channel_stats(data["train_x"])
    return ImageData(data["train_x"], data["train_y"], data["test_x"], data["test_y"],
                     num_classes=NUM_CLASSES, mean=mean, std=std, augment=False, crop_padding=4,
                     flip=False, name="mnist1d")


def package_version() -> str:
    """The installed ``mnist1d`` version (part of the cache key: the generator may change)."""
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError:
        raise DataError("dataset: mnist1d needs the mnist1d package (pip install mnist1d)") from None


def generate(args: Mnist1dArgs) -> dict[str, Any]:
    """Run the package's generator; the global ``random``/``numpy`` state it seeds is restored."""
    from mnist1d.data import make_dataset  # imports matplotlib: only when generating

    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        raw = make_dataset(types.SimpleNamespace(**{**args.model_dump(), "padding": list(args.padding)}))
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)

    def signals(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).unsqueeze(1)

    return {"train_x": signals(raw["x"]), "train_y": torch.from_numpy(raw["y"]).long(),
            "test_x": signals(raw["x_test"]), "test_y": torch.from_numpy(raw["y_test"]).long()}
