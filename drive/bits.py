"""Booleans packed 8 per byte, in ``numpy.packbits`` order (the first element in the top bit)."""

from __future__ import annotations

import numpy as np
import torch

_BIT_VALUES = (128, 64, 32, 16, 8, 4, 2, 1)


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as uint8, 8 elements per byte (flattened in logical order)."""
    if mask.device.type == "cpu":  # numpy's one C pass; tensor ops on other devices
        return torch.from_numpy(np.packbits(mask.reshape(-1).numpy()))
    flat = mask.reshape(-1).to(torch.uint8)
    flat = torch.nn.functional.pad(flat, (0, -flat.numel() % 8))
    values = torch.tensor(_BIT_VALUES, dtype=torch.uint8, device=flat.device)
    return (flat.view(-1, 8) * values).sum(1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """The first ``numel`` booleans packed by :func:`pack_bits`, flat."""
    if packed.device.type == "cpu":
        return torch.from_numpy(np.unpackbits(packed.numpy(), count=numel).view(np.bool_))
    values = torch.tensor(_BIT_VALUES, dtype=torch.uint8, device=packed.device)
    return (packed.reshape(-1, 1) & values).ne(0).reshape(-1)[:numel]
