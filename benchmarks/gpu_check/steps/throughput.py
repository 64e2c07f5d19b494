"""The throughput steps: ``benchmarks.bench_throughput`` on a full CIFAR-sized epoch, and the
ablations of its project path (bf16, channels_last, compile, CUDA graphs each off through its
``--project-set`` flag) against the default and the best plain recipe."""

from __future__ import annotations

import argparse
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.gpu_check.plan import CIFAR_TRAIN, sizes
from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.steps.util import command, run_bench, say

#: the project path's variants: name, bench_throughput ``--project-set`` items
VARIANTS: list[tuple[str, list[str]]] = [
    ("project", []),
    ("eager", ["compile=false"]),
    ("no_cuda_graphs", ["cuda_graphs=false"]),
    ("eager_fp32", ["compile=false", "bf16=false"]),
    ("eager_nchw", ["compile=false", "channels_last=false"]),
    ("all_off", ["compile=false", "bf16=false", "channels_last=false", "cuda_graphs=false"]),
]
PLAIN_BEST = "plain_best"


def throughput_argv(opts: argparse.Namespace, model: str, repeat: int, project_set: Sequence[str] = ()) -> list[str]:
    """bench_throughput's arguments for ``model`` at this mode's sizes."""
    z = sizes(opts)
    argv = ["--models", model, "--images", str(z["images"]), "--batch-size", str(z["batch_size"]),
            "--repeat", str(repeat), "--workers", str(z["workers"])]
    for item in project_set:
        argv += ["--project-set", item]
    return argv


def step_throughput(opts: argparse.Namespace, rec: Partial, model: str) -> None:
    """bench_throughput on one model: project path vs the plain and the best plain recipe."""
    z = sizes(opts)
    argv = throughput_argv(opts, model, z["repeat"]) + [
        "--peak-seconds", "0.05" if opts.cpu else "0.5", "--device", z["device"]]
    rec.update(argv=command("bench_throughput", argv))
    result = run_bench("bench_throughput", argv)
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in result["rows"]]
    r = rows[0]
    rec.update(rows=rows, seconds={r2["model"]: r2["seconds"] for r2 in result["rows"]}, targets=result["targets"],
               headline=(f"{model}: project {r['project_img_s']:,.0f} img/s = {r['ratio']:.2f}x plain, "
                         f"{r['ratio_best']:.2f}x plain_best; 50k epoch {r['project_epoch_50k_s']:.2f} s "
                         f"({r['epoch_50k']}); {r['project_share_of_peak']:.0%} of the measured "
                         f"{r['peak_dtype']} peak"))


def variant_settings(bt: Any, project_set: list[str] | None, opts_b: argparse.Namespace,
                     device: Any) -> dict[str, bool]:
    """What a variant does on ``device`` (``project_set`` None: the best plain recipe)."""
    if project_set is None:
        cuda = device.type == "cuda"
        return {"bf16": cuda, "channels_last": True, "compile": False, "cuda_graphs": False}
    return bt.project_settings(bt.project_train_config(opts_b), device)


def time_variant(bt: Any, model: str, root: Path, opts_b: argparse.Namespace, device: Any, name: str,
                 plain: bool) -> dict[str, Any]:
    """Build one variant's case (bench_throughput's project case under its ``--project-set``,
    or the best plain recipe), warm it up, time ``opts_b.repeat`` epochs."""
    import torch

    from benchmarks.common import Case, best, side_by_side

    if plain:
        case, _ = bt.plain_case(model, root, opts_b, device, tuned=True)
    else:
        case, _ = bt.project_case(model, root, opts_b, device)
    start = time.perf_counter()
    if case.warmup is not None:
        case.warmup()
    if device.type == "cuda":
        torch.cuda.synchronize()
    warm = time.perf_counter() - start
    times = side_by_side([Case(name, case.run)], opts_b.repeat, device)[name]
    rate = opts_b.images / best(times)
    return {"status": "ran", "img_s": rate, "epoch_50k_s": CIFAR_TRAIN / rate, "warmup_s": warm,
            "seconds": [round(t, 3) for t in times]}


def step_ablation(opts: argparse.Namespace, rec: Partial, model: str) -> None:
    """Each variant of the project path, and the best plain recipe, one at a time so that each
    result is kept as it comes; a variant whose settings on this device equal an earlier one's
    is skipped."""
    import gc

    import torch

    from benchmarks import bench_throughput as bt

    z = sizes(opts)
    device = torch.device(z["device"])
    repeat = z["ablation_repeat"]
    rec.update(images=z["images"], batch=z["batch_size"], repeat=repeat)
    rows: list[dict[str, Any]] = []
    plan: list[tuple[str, list[str] | None]] = [VARIANTS[0], (PLAIN_BEST, None), *VARIANTS[1:]]
    with tempfile.TemporaryDirectory(prefix="gpu_check_cifar_") as tmp:
        bt.write_cifar10(Path(tmp), z["images"])
        for name, project_set in plan:
            opts_b = bt.build_parser().parse_args(throughput_argv(opts, model, repeat, project_set or []))
            flags = variant_settings(bt, project_set, opts_b, device)
            row: dict[str, Any] = {"model": model, "variant": name,
                                   "project_set": None if project_set is None else " ".join(project_set), **flags}
            same = next((r["variant"] for r in rows if project_set is not None and r["variant"] != PLAIN_BEST
                         and all(r[k] == v for k, v in flags.items())), None)
            if same is not None:  # on the CPU: bf16, compile (auto) and CUDA graphs are off anyway
                row.update(status="skipped", reason=f"the same settings as {same} on {device.type}")
                rows.append(row)
                rec.update(rows=rows)
                continue
            say(f"{model} {name}: {flags}")
            try:
                _reset_dynamo_counters()
                row.update(time_variant(bt, model, Path(tmp), opts_b, device, name, project_set is None),
                           **_dynamo_counters())
            except Exception as e:
                traceback.print_exc()
                row.update(status="failed", reason=f"{type(e).__name__}: {e}"[:400])
            rows.append(row)
            _compare(rows)
            rec.update(rows=rows)
            say(f"  {name}: " + (f"{row['img_s']:,.0f} img/s, warm-up {row['warmup_s']:.1f} s"
                                 if row.get("img_s") else row.get("reason", "")))
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    got = {r["variant"]: r for r in rows if r.get("img_s")}
    rec.update(headline=f"{model} img/s: " + ", ".join(f"{n} {r['img_s']:,.0f}" for n, r in got.items()))
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        rec.update(reason=f"{len(failed)} variant(s) failed: {failed[0]['variant']}: {failed[0]['reason']}")
        raise SystemExit(1)


def _compare(rows: list[dict[str, Any]]) -> None:
    """Each timed row's rate over the project's and the best plain recipe's."""
    ref = {r["variant"]: r.get("img_s") for r in rows}
    for r in rows:
        if r.get("img_s"):
            r["vs_project"] = r["img_s"] / ref["project"] if ref.get("project") else None
            r["vs_plain_best"] = r["img_s"] / ref[PLAIN_BEST] if ref.get(PLAIN_BEST) else None


def _reset_dynamo_counters() -> None:
    try:
        from torch._dynamo.utils import counters

        counters.clear()
    except Exception:
        pass


def _dynamo_counters() -> dict[str, Any]:
    """What torch.compile did (private counters; empty where they moved)."""
    try:
        from torch._dynamo.utils import counters

        out = {"graphs": counters["stats"].get("unique_graphs", 0),
               "graph_breaks": sum(counters["graph_break"].values())}
        skips = {k: v for k, v in counters["inductor"].items() if "cudagraph" in k}
        if skips:
            out["cudagraph_counters"] = str(dict(skips))
        return out
    except Exception:
        return {}
