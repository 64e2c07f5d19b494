"""drive.flops against counts worked out by hand from the layers' shapes.

Every expected figure below is written as the arithmetic that gives it: output positions from
the convolution formula floor((L + 2p - d(k-1) - 1) / s) + 1, times the weights each position
uses (out channels x in channels / groups x kernel), one multiply-accumulate (MAC) each.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from drive.flops import OTHER, bitmap_bytes, count_costs, csr_bytes
from drive.masks import Masks
from drive.models import build_model


def _random_keep(shape: tuple[int, ...], kept: int, seed: int = 0) -> torch.Tensor:
    """A mask of ``shape`` keeping exactly ``kept`` weights at random places."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.zeros(torch.Size(shape).numel(), dtype=torch.bool)
    flat[torch.randperm(flat.numel(), generator=gen)[:kept]] = True
    return flat.view(shape)


def test_a_strided_padded_grouped_dilated_conv2d():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, dilation=2, groups=2)
    # H: (11 + 2*1 - 2*(3-1) - 1) // 2 + 1 = 8 // 2 + 1 = 5; W: (9 + 2 - 4 - 1) // 2 + 1 = 4
    positions = 5 * 4
    assert conv(torch.zeros(1, 4, 11, 9)).shape[2:] == (5, 4)  # the hand formula is right
    per_position = 6 * (4 // 2) * 3 * 3  # out x in/groups x kernel: 108 weights
    costs = count_costs(conv, (4, 11, 9))
    assert costs.macs_dense == costs.macs == per_position * positions == 2160
    assert costs.flops_dense == 2 * 2160  # a MAC is 2 FLOPs
    keep = _random_keep(tuple(conv.weight.shape), 37)
    costs = count_costs(conv, (4, 11, 9), {"": keep})
    assert costs.macs == 37 * positions
    assert costs.flops == 2 * 37 * positions and costs.macs_dense == 2160
    assert costs.flops_fraction == pytest.approx(37 / 108)


def test_a_conv1d_on_signals():
    conv = nn.Conv1d(3, 5, 4, stride=3, padding=2, bias=False)
    # L: (20 + 2*2 - (4-1) - 1) // 3 + 1 = 20 // 3 + 1 = 7
    assert count_costs(conv, (3, 20)).macs_dense == 5 * 3 * 4 * 7 == 420
    keep = _random_keep((5, 3, 4), 9, seed=1)
    assert count_costs(conv, (3, 20), {"": keep}).macs == 9 * 7


def test_a_linear_layer_counts_one_mac_per_weight_per_row():
    fc = nn.Linear(7, 3)
    assert count_costs(fc, (7,)).macs_dense == 7 * 3  # bias adds are not MACs
    assert count_costs(fc, (4, 7)).macs_dense == 4 * 7 * 3  # each of 4 leading rows
    keep = _random_keep((3, 7), 5)
    assert count_costs(fc, (4, 7), {"": keep}).macs == 4 * 5


class TinyNet(nn.Module):
    """conv 1 -> 2, 3x3 on 5x5 (3x3 out) -> flatten 18 -> linear 18 -> 4."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)
        self.bn = nn.BatchNorm2d(2)
        self.fc = nn.Linear(18, 4)

    def forward(self, x):
        return self.fc(torch.flatten(torch.relu(self.bn(self.conv(x))), 1))


def test_a_masked_conv_and_linear_net_sums_kept_weights_times_positions():
    net = TinyNet()
    keep = {"conv": _random_keep((2, 1, 3, 3), 5), "fc": _random_keep((4, 18), 7)}
    costs = count_costs(net, (1, 5, 5), keep)
    assert costs.macs_dense == 2 * 1 * 9 * (3 * 3) + 18 * 4  # 162 + 72: BN and ReLU add none
    assert costs.macs == 5 * (3 * 3) + 7 * 1
    assert costs.layer_flops == {"conv": 2 * 45, "fc": 2 * 7}
    assert costs.layer_flops_dense == {"conv": 2 * 162, "fc": 2 * 72}
    rows = {r.name: r for r in costs.layers}
    assert set(rows) == {"conv", "fc"} and costs.macs_other == 0
    assert rows["conv"].share == pytest.approx(162 / 234) and rows["fc"].kept == 7
    # a layer without a mask counts dense
    assert count_costs(net, (1, 5, 5), {"fc": keep["fc"]}).macs == 162 + 7


def test_mnist1d_cnn_by_hand_and_under_real_masks():
    model = build_model("mnist1d_cnn", 10, 1, 40, sample_shape=(1, 40))
    convs = [m for m in model.features if isinstance(m, nn.Conv1d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.padding[0])
            for c in convs] == [(1, 25, 5, 2, 1), (25, 25, 3, 2, 1), (25, 25, 3, 2, 1)]
    assert (model.classifier.in_features, model.classifier.out_features) == (125, 10)
    # lengths: (40 + 2 - 5) // 2 + 1 = 19; (19 + 2 - 3) // 2 + 1 = 10; (10 + 2 - 3) // 2 + 1 = 5
    positions = {"features.0": 19, "features.2": 10, "features.4": 5, "classifier": 1}
    dense = 25 * 1 * 5 * 19 + 25 * 25 * 3 * 10 + 25 * 25 * 3 * 5 + 125 * 10
    assert dense == 31750
    assert count_costs(model, (1, 40)).macs_dense == dense

    gen = torch.Generator().manual_seed(0)
    masks = Masks.for_model(model)
    masks.prune_to({n: torch.rand(w.shape, generator=gen) for n, w in masks.weights.items()}, 0.1)
    costs = count_costs(model, (1, 40), masks.keep)
    counts = masks.layer_counts()
    assert costs.macs == sum(counts[n] * positions[n] for n in positions)
    assert costs.macs < dense / 5  # a real reduction, not the dense count
    assert [r.kept for r in costs.layers] == [counts[n] for n in positions]

    masks = Masks.for_model(model, exclude_last=True)  # the classifier stays dense
    masks.prune_to({n: w.abs() for n, w in masks.weights.items()}, 0.05)
    costs = count_costs(model, (1, 40), masks.keep)
    counts = masks.layer_counts()
    assert costs.macs == sum(counts[n] * positions[n] for n in counts) + 125 * 10
    assert not {r.name: r for r in costs.layers}["classifier"].masked


def test_digits_cnn_counts_convs_and_classifier_not_bn_or_pooling():
    model = build_model("digits_cnn", 10, 1, 8)
    # 8x8 convs keep the size (padding 1); max-pool halves it before the third conv
    dense = 32 * 1 * 9 * 64 + 64 * 32 * 9 * 64 + 128 * 64 * 9 * 16 + 128 * 10
    assert count_costs(model, (1, 8, 8)).macs_dense == dense


class Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6, bias=False)

    def forward(self, x):
        return self.fc(torch.relu(self.fc(x)))


def test_a_layer_called_twice_counts_both_calls():
    net = Twice()
    costs = count_costs(net, (6,))
    assert costs.macs_dense == 2 * 36 and costs.layers[0].calls == 2
    keep = _random_keep((6, 6), 10)
    assert count_costs(net, (6,), {"fc": keep}).macs == 2 * 10


class WithMatmul(nn.Module):
    """A weight used outside any conv/linear module: counted dense, as (other)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 5)
        self.extra = nn.Parameter(torch.ones(5, 2))

    def forward(self, x):
        return self.fc(x) @ self.extra


def test_work_outside_weight_layers_counts_dense_as_other():
    costs = count_costs(WithMatmul(), (3,), {"fc": _random_keep((5, 3), 4)})
    assert costs.macs_other == 5 * 2
    assert costs.macs_dense == 3 * 5 + 5 * 2 and costs.macs == 4 + 5 * 2
    assert costs.layers[-1].name == OTHER and OTHER not in costs.layer_flops


def test_csr_and_bitmap_bytes_of_a_hand_made_mask():
    keep = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    # 5 kept float32 values (4 bytes) + 5 int32 column indices + (3 rows + 1) int32 pointers
    assert csr_bytes(keep, 4) == 5 * 4 + 5 * 4 + 4 * 4 == 56
    # 5 values + 12 bits rounded up to 2 bytes
    assert bitmap_bytes(keep, 4) == 5 * 4 + 2 == 22
    conv_keep = torch.zeros(2, 3, 2, 2, dtype=torch.bool)
    conv_keep[0, 1, 0, 1] = conv_keep[1, 2, 1, 1] = conv_keep[1, 0, 0, 0] = True
    # rows are the 2 output channels; 24 bits = 3 bytes; float64 values are 8 bytes
    assert csr_bytes(conv_keep, 8) == 3 * 8 + 3 * 4 + (2 + 1) * 4 == 48
    assert bitmap_bytes(conv_keep, 8) == 3 * 8 + 3 == 27


def test_model_bytes_keep_unmasked_parameters_dense():
    net = TinyNet()  # conv 18 + 2 bias, bn 2 + 2, fc 72 + 4: 100 float32 parameters
    keep = {"fc": torch.zeros(4, 18, dtype=torch.bool)}
    keep["fc"][0, :3] = keep["fc"][3, 17] = True  # 4 kept
    costs = count_costs(net, (1, 5, 5), keep)
    rest = (18 + 2 + 2 + 2 + 4) * 4  # everything but the masked fc weight, dense
    assert costs.bytes_dense == 100 * 4
    assert costs.bytes_csr == rest + 4 * 4 + 4 * 4 + (4 + 1) * 4
    assert costs.bytes_bitmap == rest + 4 * 4 + 72 // 8
    fc = {r.name: r for r in costs.layers}["fc"]
    assert (fc.bytes_dense, fc.bytes_csr, fc.bytes_bitmap) == (288, 52, 25)


def test_runs_in_eval_mode_in_the_model_dtype_and_restores_the_flags():
    net = TinyNet().double()
    net.train()
    net.bn.eval()
    before = net.bn.running_mean.clone()
    costs = count_costs(net, (1, 5, 5))
    assert costs.bytes_dense == 100 * 8
    assert net.training and not net.bn.training and net.conv.training
    assert torch.equal(net.bn.running_mean, before)


def test_to_dict_is_json_ready_with_the_issue_keys():
    net = TinyNet()
    costs = count_costs(net, (1, 5, 5), {"conv": _random_keep((2, 1, 3, 3), 4)})
    record = json.loads(json.dumps(costs.to_dict()))
    assert record["flops"] == 2 * (4 * 9 + 72) and record["flops_dense"] == 2 * 234
    assert record["macs"] == 4 * 9 + 72 and record["sample_shape"] == [1, 5, 5]
    assert record["layer_flops"] == {"conv": 2 * 36, "fc": 2 * 72}
    assert {"bytes_dense", "bytes_csr", "bytes_bitmap", "flops_fraction"} <= set(record)
    assert [r["name"] for r in json.loads(json.dumps(costs.rows()))] == ["conv", "fc"]


def test_bad_masks_and_shapes_are_refused():
    net = TinyNet()
    with pytest.raises(ValueError, match="'bn' is not a conv or linear"):
        count_costs(net, (1, 5, 5), {"bn": torch.ones(2, dtype=torch.bool)})
    with pytest.raises(ValueError, match="shape"):
        count_costs(net, (1, 5, 5), {"fc": torch.ones(4, 17, dtype=torch.bool)})
    with pytest.raises(ValueError, match="sample_shape"):
        count_costs(net, (1, 0, 5))
