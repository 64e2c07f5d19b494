"""Data sets and models named by import path (``drive_test_fakes:...``) in tests that run
trials in other processes or on other Ray nodes. Tests put this folder on ``PYTHONPATH``.

Every call is recorded as a JSON line in the file named by ``DRIVE_TEST_EVENTS`` (when set),
with the node label ``DRIVE_TEST_NODE`` (the environment of the Ray node the process runs on).
"""

import json
import os
import time
import warnings
from pathlib import Path

import torch

from drive.data.digits import digits
from drive.models.small import digits_cnn

#: How long the fake download takes (seconds).
DOWNLOAD_S = float(os.environ.get("DRIVE_TEST_DOWNLOAD_S", "0.5"))


def record(event: str, **fields) -> None:
    path = os.environ.get("DRIVE_TEST_EVENTS")
    if path:
        line = {"event": event, "node": os.environ.get("DRIVE_TEST_NODE"), "pid": os.getpid(),
                "time": time.time(), **fields}
        with open(path, "a") as f:
            f.write(json.dumps(line) + "\n")


def downloading_digits(cfg):
    """Digits behind a slow fake download into ``cfg.root`` (done when the archive is missing
    and ``cfg.download`` is set), the way torchvision's downloads behave."""
    archive = Path(cfg.root) / "fake-archive"
    if not archive.exists():
        if not cfg.download:
            raise FileNotFoundError(archive)
        record("download-start", root=cfg.root)
        time.sleep(DOWNLOAD_S)
        archive.parent.mkdir(parents=True, exist_ok=True)
        archive.write_text("files\n")
        record("download-end", root=cfg.root)
    record("load", root=cfg.root, num_workers=cfg.num_workers)
    return digits(cfg)


class _Slow(torch.nn.Module):
    """A model whose training forward passes take ``delay`` seconds longer (results unchanged),
    so that a test can act while a trial is mid-training."""

    def __init__(self, inner: torch.nn.Module, delay: float):
        super().__init__()
        self.inner, self.delay = inner, delay

    def forward(self, x):
        if self.training:
            time.sleep(self.delay)
        return self.inner(x)


def slow_digits_cnn(num_classes, in_channels, image_size, *, width=0.5, delay=0.02):
    return _Slow(digits_cnn(num_classes, in_channels, image_size, width=width), delay)


def noisy_digits_cnn(num_classes, in_channels, image_size, *, width=0.5):
    """digits_cnn that prints a line and warns when built, as user code or a library may."""
    print("noisy model: built on stdout")
    warnings.warn("noisy model: a warning from the trial", UserWarning)
    return digits_cnn(num_classes, in_channels, image_size, width=width)
