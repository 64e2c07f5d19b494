"""The benchmarks' code at the tiniest sizes, so that it keeps working (no timing is asserted)."""

import math

import pytest
import torch

from benchmarks import bench_masks, bench_pruning_cost, bench_results_loading, bench_throughput, peak
from benchmarks.common import Case, fastest, side_by_side
from benchmarks.machine import describe, machine_info
from drive.config import DataConfig
from drive.data import load_dataset
from drive.errors import ConfigError


def test_machine_info_names_the_cpu_torch_and_date():
    info = machine_info()
    assert info["cores"] >= 1 and info["torch"] == torch.__version__ and info["date"]
    assert info["cpu"] in describe(info)


def test_side_by_side_times_every_case_every_round_after_its_warmup():
    calls = []
    times = side_by_side([Case("a", lambda: calls.append("a"), warmup=lambda: calls.append("wa")),
                          Case("b", lambda: calls.append("b"))], repeat=2)
    assert calls == ["wa", "a", "b", "b", "a"]  # warm-ups first, then the order alternates
    assert {k: len(v) for k, v in times.items()} == {"a": 2, "b": 2}


def test_fastest_is_the_best_of_the_timed_calls_after_an_untimed_one():
    calls = []
    assert fastest(lambda: calls.append(1), repeat=3) >= 0 and len(calls) == 4


def test_both_throughput_paths_read_the_same_generated_cifar_files(tmp_path):
    bench_throughput.write_cifar10(tmp_path, 12, n_test=4)
    plain = bench_throughput.GeneratedCIFAR10(str(tmp_path), train=True)
    project = load_dataset("cifar10", DataConfig(root=str(tmp_path), verify=False))
    assert len(plain) == project.num_train == 12
    assert torch.equal(torch.from_numpy(plain.data).permute(0, 3, 1, 2), project.train_images)
    assert torch.equal(torch.tensor(plain.targets), project.train_labels)


def test_throughput_measures_both_paths():
    opts = bench_throughput.build_parser().parse_args(
        ["--models", "resnet20", "--images", "32", "--batch-size", "16", "--repeat", "1", "--workers", "0",
         "--device", "cpu", "--peak-seconds", "0.05"])
    result = bench_throughput.run(opts)
    (row,) = result["rows"]
    assert row["plain_img_s"] > 0 and row["plain_best_img_s"] > 0 and row["project_img_s"] > 0
    assert row["ratio"] == pytest.approx(row["project_img_s"] / row["plain_img_s"])
    assert row["ratio_best"] == pytest.approx(row["project_img_s"] / row["plain_best_img_s"])
    assert row["epoch_50k"] == "projected"
    assert [t["status"].split()[0] in ("met", "MISSED", "tie") for t in result["targets"]] == [True, True]
    # ResNet-20 trains with about 41M multiply-adds per image forward, three times that in all
    assert 0.2 < row["train_gflop_per_img"] < 0.3
    assert row["project_share_of_peak"] == pytest.approx(row["project_gflops"] / result["peak"]["peak_gflops"])
    assert 0 < row["project_share_of_peak"] < 1.5


def test_project_set_changes_the_project_path_alone_and_is_checked_before_any_work():
    parse = bench_throughput.build_parser().parse_args
    default = bench_throughput.project_train_config(parse([]))
    assert default.compile == "auto" and default.bf16 and default.batch_size == 128 and default.lr == 0.05
    cfg = bench_throughput.project_train_config(parse(["--project-set", "compile=false",
                                                       "--project-set", "channels_last=false"]))
    assert cfg.compile is False and not cfg.channels_last and cfg.bf16 and cfg.batch_size == 128
    assert bench_throughput.project_settings(cfg, torch.device("cpu")) == {
        "bf16": False, "channels_last": False, "compile": False, "cuda_graphs": False}
    with pytest.raises(ConfigError, match="train.no_such_field"):
        bench_throughput.run(parse(["--project-set", "no_such_field=1", "--device", "cpu"]))
    with pytest.raises(SystemExit):  # argparse: not KEY=VALUE
        parse(["--project-set", "compile"])


def test_the_epoch_target_is_judged_on_an_h100_and_an_h200_alike():
    row = {"model": "resnet18", "device": "cuda", "ratio": 3.5, "ratio_best": 1.2,
           "project_epoch_50k_s": 2.5, "epoch_50k": "measured"}
    for gpu in ("NVIDIA H100 80GB HBM3", "NVIDIA H200"):
        (epoch,) = [t for t in bench_throughput.targets([row], gpu) if "epoch" in t["target"]]
        assert epoch["status"] == "met" and gpu.split()[1] in epoch["target"]
    assert not [t for t in bench_throughput.targets([row], "NVIDIA A100-SXM4-40GB") if "epoch" in t["target"]]


def test_the_peak_is_measured_in_the_dtype_asked_for():
    fp32 = peak.measured_peak(torch.device("cpu"), 0.0, size=64)
    assert fp32["peak_dtype"] == "float32" and fp32["peak_gflops"] == max(fp32["matmul_gflops"], fp32["conv_gflops"])
    bf16 = peak.measured_peak(torch.device("cpu"), 0.0, size=64, dtype=torch.bfloat16)
    assert bf16["peak_dtype"] == "bfloat16" and bf16["peak_gflops"] > 0
    both = peak.higher_peak(fp32, {**fp32, "matmul_gflops": fp32["matmul_gflops"] * 2})
    assert both["matmul_gflops"] == 2 * fp32["matmul_gflops"] and both["peak_dtype"] == "float32"


def test_mask_overhead_compares_a_90_percent_sparse_step_with_a_dense_one():
    opts = bench_masks.build_parser().parse_args(
        ["--models", "digits_cnn", "--repeat", "1", "--round-seconds", "0.02", "--device", "cpu"])
    (row,) = bench_masks.run(opts)["rows"]
    assert row["density"] == pytest.approx(0.1, abs=1e-4)
    assert row["dense_ms"] > 0 and row["masked_ms"] > 0 and row["enforce_ms"] > 0
    assert math.isfinite(row["overhead_pct"])


def test_pruning_cost_orders_the_methods_by_samples_and_compares_with_imp():
    opts = bench_pruning_cost.build_parser().parse_args(
        ["--datasets", "digits", "--sparsities", "0.5,0.8", "--digits-epochs", "1", "--device", "cpu",
         "--methods", "drive,snip,magnitude,random,imp"])
    rows = bench_pruning_cost.costs("digits", opts)
    at = {(r["method"], r["sparsity"]): r for r in rows}
    assert set(at) == {(m, s) for m in opts.methods for s in (0.5, 0.8)}
    for s in (0.5, 0.8):
        samples = {m: at[(m, s)]["prune_samples"] for m in opts.methods}
        assert samples["imp"] > samples["drive"] > samples["snip"] > samples["magnitude"] == 0
        assert samples["random"] == 0
        assert at[("drive", s)]["imp_samples_ratio"] > 1
        assert at[("magnitude", s)]["imp_samples_ratio"] == math.inf
    assert at[("imp", 0.5)]["rounds"] < at[("imp", 0.8)]["rounds"]  # one IMP run passed both levels
    drive = at[("drive", 0.8)]
    assert drive["scoring_samples"] == 10 * 64 and drive["epoch_samples"] == 1437  # T x batch, N


def test_pruning_cost_set_changes_every_experiment_and_is_checked_before_any_work():
    parse = bench_pruning_cost.build_parser().parse_args
    opts = parse(["--set", "train.compile=false", "--set", "train.lr=0.2", "--device", "cpu"])
    for dataset in ("digits", "cifar"):
        tree = bench_pruning_cost.base_experiment(dataset, opts)
        assert tree["train"]["compile"] is False and tree["train"]["lr"] == 0.2
    assert "compile" not in bench_pruning_cost.base_experiment("cifar", parse([]))["train"]  # as before
    with pytest.raises(ConfigError, match="train.no_such_field"):
        bench_pruning_cost.run(parse(["--datasets", "digits", "--set", "train.no_such_field=1"]))


def test_the_paper_projection_grows_with_sparsity_and_shrinks_with_warmup():
    rows = bench_pruning_cost.paper_projection()
    assert [r["warmup_epochs"] for r in rows] == [5, 10, 20]
    for r in rows:
        assert r["ratio_0.9"] < r["ratio_0.95"] < r["ratio_0.98"]
    assert rows[0]["ratio_0.98"] > rows[-1]["ratio_0.98"]
    # IMP needs 18 rounds of 160 epochs for 98%; DRIVE 5 warm-up epochs plus 10 batches of 128
    assert rows[0]["ratio_0.98"] == pytest.approx(18 * 160 * 50_000 / (5 * 50_000 + 10 * 128))


def test_every_benchmark_module_runs_from_run_all():
    from benchmarks import run_all

    for name, module in run_all.BENCHMARKS.items():
        mod = __import__(module, fromlist=["main"])
        assert callable(mod.main) and callable(mod.run)
        mod.build_parser().parse_args(mod.QUICK)  # the quick options are valid


def test_results_loading_reads_every_synthetic_trial():
    opts = bench_results_loading.build_parser().parse_args(["--trials", "50", "--epochs", "4", "--repeat", "1"])
    result = bench_results_loading.run(opts)
    assert result["rows"] >= 50 and result["load_s"] > 0
    assert result["targets"][0]["status"] == "n/a"  # the 10 s target is judged at 2,000 trials only


def test_compile_benchmark_times_both_paths_and_the_break_even(monkeypatch):
    from benchmarks import bench_compile

    # the compilation itself is tested in tests/drive/test_train.py; here the benchmark's code
    monkeypatch.setattr(bench_compile, "training_model", lambda model, cfg, device: model)
    opts = bench_compile.build_parser().parse_args(["--models", "digits_cnn,no_such_model", "--repeat", "1",
                                                    "--round-seconds", "0.02", "--device", "cpu"])
    (row,) = bench_compile.run(opts)["rows"]
    assert row["model"] == "digits_cnn" and row["steps_per_epoch"] == 23  # 1,437 digits at batch 64
    assert row["eager_ms"] > 0 and row["compiled_ms"] > 0 and row["compile_warm_s"] > 0
    assert row["break_even_epochs"] == pytest.approx(row["break_even_steps"] / 23)


def test_before_after_extracts_a_commit_and_probes_a_tree(tmp_path):
    from benchmarks import bench_before_after

    commit = bench_before_after.extract("HEAD", tmp_path)
    assert len(commit) == 40 and (tmp_path / "drive" / "experiment.py").is_file()
    opts = bench_before_after.build_parser().parse_args(["--rounds", "1", "--seconds", "0.01", "--cases", "step"])
    result = bench_before_after.run(opts)
    cases = {r["case"]: r for r in result["rows"]}
    assert set(cases) == {f"step_ms {m} {p}" for m in ("digits_cnn", "resnet20") for p in ("dense", "sparse")}
    assert all(r["after"] > 0 and "before" not in r for r in cases.values())


def test_imagenet_input_times_every_decode_mode_on_real_jpeg_files(tmp_path):
    from PIL import Image

    from benchmarks import bench_imagenet_input

    assert bench_imagenet_input.write_imagenet(tmp_path, 6, classes=2) > 0
    with Image.open(next((tmp_path / "train").rglob("*.JPEG"))) as image:
        assert image.format == "JPEG" and max(image.size) == 500
    opts = bench_imagenet_input.build_parser().parse_args(
        ["--images", "8", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--repeat", "1",
         "--device", "cpu"])
    rows = bench_imagenet_input.run(opts)["rows"]
    assert [(r["mode"], r["workers"]) for r in rows] == [("pil", 0), ("cpu", 0), ("device", 0)]
    assert all(r["img_s"] > 0 for r in rows) and rows[0]["vs_pil_same_workers"] == 1
