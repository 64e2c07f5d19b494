"""Fixtures shared by the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_torch_rng():
    """Tests seed torch; keep that from leaking into other tests."""
    state = torch.get_rng_state()
    yield
    torch.set_rng_state(state)
