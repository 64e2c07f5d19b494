import numpy as np
import torch

from drive.bits import pack_bits, unpack_bits


def test_bits_are_packed_like_numpy_packbits_and_unpack_back():
    torch.manual_seed(0)
    for n in (1, 7, 8, 9, 1000):
        mask = torch.rand(n) < 0.3
        packed = pack_bits(mask)
        assert packed.dtype == torch.uint8 and packed.tolist() == np.packbits(mask.numpy()).tolist()
        assert torch.equal(unpack_bits(packed, n), mask)
    grid = torch.rand(3, 5, 7) < 0.5
    assert torch.equal(unpack_bits(pack_bits(grid), grid.numel()).view(3, 5, 7), grid)
