"""Fixtures shared by the pruner tests: a small real network and batches for cross-checks
against the reference implementations' formulations."""

from __future__ import annotations

import pytest
import torch
from torch import nn


def _bn_resnet(seed: int = 0) -> nn.Module:
    """resnet20 at width 0.25 for 8 px images, float64, its BN layers given non-trivial running
    statistics and affines (so that eval and train mode differ)."""
    from drive.models import build_model

    torch.manual_seed(seed)
    net = build_model("resnet20", 3, 3, 8, width=0.25).double()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                for t, lo, hi in ((m.running_mean, -0.5, 0.5), (m.running_var, 0.5, 2.0),
                                  (m.weight, 0.5, 1.5), (m.bias, -0.3, 0.3)):
                    t.copy_(torch.rand(t.shape, generator=gen, dtype=t.dtype) * (hi - lo) + lo)
    return net


def _image_batches(n: int, seed: int = 1, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` batches of ``size`` random 3x8x8 float64 images with labels in 0..2."""
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 3, 8, 8, generator=gen, dtype=torch.float64),
             torch.randint(0, 3, (size,), generator=gen)) for _ in range(n)]


@pytest.fixture
def bn_resnet():
    """A factory: ``bn_resnet(seed)``; the test's torch seeding does not leak out."""
    state = torch.get_rng_state()
    yield _bn_resnet
    torch.set_rng_state(state)


@pytest.fixture
def image_batches():
    """A factory: ``image_batches(n, seed=1, size=6)``."""
    return _image_batches
