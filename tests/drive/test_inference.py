"""drive.inference: the sparse-execution copy computes what the dense-masked model computes."""

from __future__ import annotations

import copy
import statistics

import pytest
import torch
from torch import nn

from drive.inference import (SparseConv, SparseLinear, Workspace, alternate, is_two_four,
                             semi_structured_unsupported, sparse_execution, time_inference,
                             two_four_keep)
from drive.masks import Masks
from drive.models import build_model


def _keep(shape, density: float, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=gen) < density


def _masked_copy(layer: nn.Module, keep: torch.Tensor) -> nn.Module:
    dense = copy.deepcopy(layer)
    with torch.no_grad():
        dense.weight.mul_(keep)
    return dense


def _randn(*shape, seed: int = 1, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@pytest.mark.parametrize("bias", [True, False])
def test_sparse_linear_equals_the_masked_linear_with_leading_dims(bias):
    torch.manual_seed(0)
    fc = nn.Linear(9, 5, bias=bias).double()
    keep = _keep((5, 9), 0.3)
    sparse, dense = SparseLinear(fc, keep), _masked_copy(fc, keep)
    assert sparse.matrix.layout == torch.sparse_csr and sparse.matrix._nnz() == int(keep.sum())
    for x in (_randn(4, 9), _randn(2, 3, 9), _randn(1, 9)):
        torch.testing.assert_close(sparse(x), dense(x), rtol=1e-12, atol=1e-12)


CONVS = {
    "2d stride 2, pad 1, dilation 2, groups 2": lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1,
                                                                  dilation=2, groups=2),
    "2d non-square kernel and stride": lambda: nn.Conv2d(3, 4, (3, 2), stride=(1, 2), padding=(2, 0)),
    "2d 'same' with an even kernel (asymmetric padding)": lambda: nn.Conv2d(2, 3, 4, padding="same"),
    "2d reflect padding, no bias": lambda: nn.Conv2d(3, 5, 3, padding=1, padding_mode="reflect",
                                                     bias=False),
    "2d circular padding": lambda: nn.Conv2d(2, 2, 3, padding=1, padding_mode="circular"),
    "2d depthwise 1x1 stride 2": lambda: nn.Conv2d(4, 4, 1, stride=2, groups=4),
    "1d stride 3, pad 2": lambda: nn.Conv1d(3, 5, 4, stride=3, padding=2),
    "3d": lambda: nn.Conv3d(2, 3, (2, 3, 3), stride=(1, 2, 1), padding=1),
}
INPUTS = {1: (2, None, 20), 2: (2, None, 11, 9), 3: (2, None, 5, 6, 7)}


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel lengths")
@pytest.mark.parametrize("name", list(CONVS))
@pytest.mark.parametrize("density", [0.05, 0.5, 1.0])
def test_sparse_conv_equals_the_masked_conv(name, density):
    torch.manual_seed(0)
    conv = CONVS[name]().double()
    keep = _keep(conv.weight.shape, density)
    sparse, dense = SparseConv(conv, keep), _masked_copy(conv, keep)
    n, _, *spatial = INPUTS[conv.weight.dim() - 2]
    x = _randn(n, conv.in_channels, *spatial)
    torch.testing.assert_close(sparse(x), dense(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(sparse(x[0]), dense(x[0]), rtol=1e-12, atol=1e-12)  # unbatched
    # only the (channel, kernel position) columns with a kept weight are gathered
    if conv.groups == 1:
        assert sparse.columns == int(keep.any(0).sum())


def test_sparse_conv_takes_channels_last_input_and_shares_one_workspace():
    torch.manual_seed(0)
    a, b = nn.Conv2d(3, 8, 3, padding=1).double(), nn.Conv2d(8, 4, 3, stride=2).double()
    workspace = Workspace()
    ka, kb = _keep(a.weight.shape, 0.2), _keep(b.weight.shape, 0.2, seed=1)
    sa, sb = SparseConv(a, ka, workspace), SparseConv(b, kb, workspace)
    x = _randn(2, 3, 10, 10).contiguous(memory_format=torch.channels_last)
    expected = _masked_copy(b, kb)(torch.relu(_masked_copy(a, ka)(x)))
    torch.testing.assert_close(sb(torch.relu(sa(x))), expected, rtol=1e-12, atol=1e-12)
    assert len(workspace.buffers) == 1  # one buffer served both layers


def test_a_collapsed_conv_outputs_its_bias():
    conv = nn.Conv2d(2, 3, 3, padding=1).double()
    sparse = SparseConv(conv, torch.zeros(conv.weight.shape, dtype=torch.bool))
    y = sparse(_randn(2, 2, 5, 5))
    assert sparse.columns == 0
    torch.testing.assert_close(y, conv.bias.detach().view(1, 3, 1, 1).expand(2, 3, 5, 5))
    torch.relu_(y)  # a real tensor, not a broadcast view


def _pruned(name: str, density: float, *args, **kwargs) -> tuple[nn.Module, Masks]:
    torch.manual_seed(0)
    model = build_model(name, *args, **kwargs).eval()
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, density)
    return model, masks


@pytest.mark.parametrize("density", [0.1, 0.01])
def test_sparse_resnet20_equals_the_dense_masked_model(density):
    model, masks = _pruned("resnet20", density, 10, 3, 8, width=0.5)
    sparse = sparse_execution(model, masks.keep)
    assert set(sparse.sparse_formats.values()) == {"csr", "csr-im2col"}
    assert isinstance(model.stem[0], nn.Conv2d) and isinstance(sparse.stem[0], SparseConv)
    assert isinstance(sparse.fc, SparseLinear)
    x = torch.randn(3, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-4, atol=1e-5)


def test_sparse_mnist1d_cnn_equals_the_dense_masked_model_with_excluded_layers():
    torch.manual_seed(0)
    model = build_model("mnist1d_cnn", 10, 1, 40, sample_shape=(1, 40)).eval()
    masks = Masks.for_model(model, exclude_first=True, exclude_last=True)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.05)
    sparse = sparse_execution(model, masks.keep)
    assert list(sparse.sparse_formats) == ["features.2", "features.4"]
    assert isinstance(sparse.features[0], nn.Conv1d) and isinstance(sparse.classifier, nn.Linear)
    x = torch.randn(5, 1, 40)
    with torch.inference_mode():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-4, atol=1e-5)


class Shared(nn.Module):
    """One linear layer called twice and registered under two names."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.again = self.fc

    def forward(self, x):
        return self.again(torch.relu(self.fc(x)))


def test_a_layer_called_twice_or_registered_twice_is_replaced_everywhere():
    torch.manual_seed(0)
    model = Shared().double()
    keep = {"fc": _keep((6, 6), 0.4)}
    with torch.no_grad():
        model.fc.weight.mul_(keep["fc"])
    sparse = sparse_execution(model, keep)
    assert sparse.fc is sparse.again and isinstance(sparse.fc, SparseLinear)
    x = _randn(4, 6)
    torch.testing.assert_close(sparse(x), model(x), rtol=1e-12, atol=1e-12)
    assert sparse_execution(model.fc, keep={"": keep["fc"]}).sparse_formats == {"": "csr"}


def test_sparse_execution_refuses_unknown_or_unprunable_layers():
    model = Shared()
    with pytest.raises(ValueError, match="not a layer"):
        sparse_execution(model, {"nope": torch.ones(6, 6, dtype=torch.bool)})
    seq = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    with pytest.raises(ValueError, match="BatchNorm1d is not a conv or linear"):
        sparse_execution(seq, {"1": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        SparseLinear(nn.Linear(3, 2), torch.ones(3, 2, dtype=torch.bool))


def test_two_four_masks_and_the_cpu_refusal():
    w = torch.tensor([[0.1, -3.0, 2.0, 0.5, 1.0, 1.5, -0.2, 0.0]])
    keep = two_four_keep(w)
    assert keep.tolist() == [[False, True, True, False, True, True, False, False]]
    assert is_two_four(keep) and not is_two_four(torch.ones(1, 8, dtype=torch.bool))
    assert not is_two_four(torch.zeros(2, 6, dtype=torch.bool))  # rows not in groups of 4
    fc = nn.Linear(8, 1)
    assert semi_structured_unsupported(fc, keep) == "2:4 needs CUDA"
    assert sparse_execution(fc, {"": keep}).sparse_formats == {"": "csr"}


def test_alternate_flips_the_order_every_round():
    calls = []
    times = alternate({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_time_inference_reports_per_batch_times_ratios_and_the_output_check():
    model, masks = _pruned("mnist1d_cnn", 0.1, 10, 1, 40, sample_shape=(1, 40))
    model.train()
    sparse = sparse_execution(model, masks.keep)
    seen = []

    def timer(cases, repeat, device):
        seen.append((sorted(cases), repeat))
        return alternate(cases, repeat, device)

    rows = time_inference(model, sparse, (1, 40), (1, 3), repeat=2, round_seconds=0.0, timer=timer)
    assert [r["batch"] for r in rows] == [1, 3] and model.training  # flags restored
    assert seen == [(["dense", "sparse"], 1), (["dense", "sparse"], 2)] * 2  # probe, then rounds
    for r in rows:
        assert r["calls"] == 1 and r["rounds"] == 2 and len(r["seconds"]["sparse"]) == 2
        paired = [s / d for d, s in zip(r["seconds"]["dense"], r["seconds"]["sparse"])]
        assert r["ratio"] == pytest.approx(statistics.median(paired))
        assert r["ratio_best"] == pytest.approx(r["sparse_best_s"] / r["dense_best_s"])
        assert r["max_abs_diff"] <= 1e-5 * max(1.0, r["max_abs_output"])


def test_time_inference_compares_a_channels_last_dense_model():
    model, masks = _pruned("resnet20", 0.1, 10, 3, 8, width=0.25)
    sparse = sparse_execution(model, masks.keep)
    dense = copy.deepcopy(model).to(memory_format=torch.channels_last)
    (row,) = time_inference(dense, sparse, (3, 8, 8), (2,), repeat=1, round_seconds=0.0,
                            memory_format=torch.channels_last)
    assert row["dense_s"] > 0 and row["sparse_s"] > 0
    assert row["max_abs_diff"] <= 1e-5 * max(1.0, row["max_abs_output"])


CUDA_2_4 = torch.cuda.is_available() and torch.cuda.get_device_capability() >= (8, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_csr_execution_equals_the_dense_masked_model():
    torch.manual_seed(0)
    model = build_model("resnet20", 10, 3, 8, width=0.25).cuda().eval()
    masks = Masks.for_model(model)
    masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.1)
    sparse = sparse_execution(model, masks.keep, semi_structured=False)
    x = torch.randn(4, 3, 8, 8, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-3, atol=1e-4)


@pytest.mark.skipif(not CUDA_2_4, reason="2:4 semi-structured sparsity needs CUDA, compute capability >= 8.0")
def test_cuda_two_four_linear_equals_the_dense_masked_linear():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 32)).half().cuda().eval()
    keep = {n: two_four_keep(m.weight) for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    with torch.no_grad():
        for n, m in model.named_modules():
            if n in keep:
                m.weight.mul_(keep[n])
    sparse = sparse_execution(model, keep)
    assert sparse.sparse_formats == {"0": "2:4", "2": "2:4"}, sparse.sparse_formats
    x = torch.randn(64, 128, device="cuda", dtype=torch.half)
    with torch.no_grad():
        torch.testing.assert_close(sparse(x), model(x), rtol=1e-2, atol=1e-2)
