"""benchmarks.bench_inference at the tiniest sizes, so that it keeps working (no timing is asserted)."""

import math

import pytest

from benchmarks import bench_inference


def test_inference_benchmark_times_every_model_sparsity_and_batch_and_finds_crossovers(capsys):
    opts = bench_inference.build_parser().parse_args(
        ["--smoke", "--sparsities", "0.9,0.99", "--batches", "1,3", "--repeat", "1",
         "--round-seconds", "0", "--device", "cpu"])
    result = bench_inference.run(opts)
    rows = result["rows"]
    assert {(r["model"], r["sparsity"], r["batch"]) for r in rows} == {
        (m, s, b) for m in bench_inference.MODELS for s in (0.9, 0.99) for b in (1, 3)}
    for r in rows:
        assert r["device"] == "cpu" and r["dense_ms"] > 0 and r["sparse_ms"] > 0
        assert math.isfinite(r["ratio"]) and r["speedup_x"] == pytest.approx(1 / r["ratio"])
        assert 0 < r["flops_left"] < 1 and r["ideal_x"] == pytest.approx(1 / r["flops_left"])
        assert r["max_err"] < 1e-5  # the sparse model computes what the dense-masked one does
        assert "csr-im2col" in r["formats"]
    theory = {(t["model"], t["sparsity"]): t for t in result["theory"]}
    for m in bench_inference.MODELS:
        lo, hi = theory[(m, 0.9)], theory[(m, 0.99)]
        assert hi["flops_left"] < lo["flops_left"] and hi["kb_csr"] < lo["kb_csr"] < lo["kb_dense"]
        assert lo["density"] == pytest.approx(0.1, abs=1e-3)
    cross = {(c["model"], c["batch"]): c["crossover"] for c in result["crossover"]}
    assert set(cross) == {(m, b) for m in bench_inference.MODELS for b in (1, 3)}
    assert all(c in ("90%", "99%", "none up to 99%") for c in cross.values())
    out = capsys.readouterr().out
    assert "crossover" in out and "flops_left" in out


def test_crossover_is_the_lowest_sparsity_where_sparse_was_faster():
    rows = [{"model": "m", "device": "cpu", "batch": 1, "sparsity": s, "ratio": r, "ratio_best": b}
            for s, r, b in ((0.9, 1.5, 1.4), (0.95, 0.99, 1.02), (0.98, 0.9, 0.9), (0.99, 0.5, 0.6))]
    rows += [{"model": "m", "device": "cpu", "batch": 8, "sparsity": s, "ratio": 1.2, "ratio_best": 0.9}
             for s in (0.9, 0.99)]
    cross = bench_inference.crossovers(rows, [0.9, 0.95, 0.98, 0.99])
    # 95%: the median ratio is below 1 but the fastest rounds' is not: noise, not a crossover
    assert [c["crossover"] for c in cross] == ["98%", "none up to 99%"]
    assert cross[0]["faster_at"] == "98%, 99%"


def test_layerwise_scope_prunes_every_layer_alike():
    opts = bench_inference.build_parser().parse_args(["--smoke", "--scope", "layerwise"])
    _, masks, _ = bench_inference.pruned("mnist1d_cnn", 0.9, opts)
    assert masks.collapsed_layers() == []
    assert all(d == pytest.approx(0.1, abs=0.01) for d in masks.layer_density().values())


def test_quick_options_parse_and_a_missing_gpu_is_a_note():
    bench_inference.build_parser().parse_args(bench_inference.QUICK)
    chosen, notes = bench_inference.devices(["cpu", "cuda"])
    assert chosen[0].type == "cpu"
    if len(chosen) == 1:
        assert notes == ["cuda: skipped, CUDA is not available"]
