"""Pruning cost of every method, and IMP's cost over each method's, at 90%, 95% and 98% sparsity.

Every figure comes from ``drive.experiment.run``: ``prune_time_s`` (compute time until the final
mask exists) and ``prune_samples`` (forward+backward sample passes spent on pruning, a
hardware-independent cost). Two settings:

* digits: the default experiment (digits_cnn on scikit-learn's digits) with few epochs;
* cifar: CIFAR-shaped synthetic data (3x32x32, 10 classes, a small train set) with the
  training settings of ``sweeps/configs/cifar10_resnet18.yaml`` (batch 128, SGD 0.1, step
  schedule), a small CIFAR model (resnet20) and the config's 160 epochs and 20 warm-up epochs
  scaled down 20 times (8 and 1).

One IMP run serves every sparsity (a branch off its trunk per sparsity, ``imp.branches``), and
each branch's cost is that of a standalone IMP run to its sparsity. The other methods run once per sparsity; their final training is cut to one epoch,
since it is not part of the pruning cost. IMP's cost is rounds x epochs x N sample passes and
DRIVE's is warm-up epochs x N + T x batch, so their ratio is about rounds x epochs / warm-up
epochs: the benchmark also projects it to the paper's CIFAR-10 settings with that formula.

It also checks that DRIVE's scoring (T=10 iterations of one batch, excluding the warm-up) costs
less than one epoch of training, measured on the same model and data with a realistic train set.

``--set KEY=VALUE`` (repeatable, dotted keys as ``drive-sweep prune --set``) changes a field of
every experiment's config, e.g. ``--set train.compile=false`` (the GPU check's default there:
every experiment builds a new model, which ``torch.compile`` would compile again). The fields
the benchmark sets itself (method, sparsity, warmup_epochs, train.epochs, train.eval_every, and
on CIFAR-shaped data the scoring check's data.train_size) are set after it and win.
"""

from __future__ import annotations

import argparse
import copy
import math
from pathlib import Path
from typing import Any

from benchmarks.common import csv_list, device_argument, entry_point, key_value, print_table, verdict
from drive.config import apply_overrides, build_config, read_yaml
from drive.experiment import run as run_experiment
from drive.imp import imp_rounds

CIFAR_CONFIG = Path(__file__).resolve().parent.parent / "sweeps" / "configs" / "cifar10_resnet18.yaml"
METHODS = ["drive", "snip", "grasp", "synflow", "magnitude", "random", "imp"]
PAPER_RANGE = (43, 869)  # the paper's reported IMP / DRIVE pruning-time ratios


def base_experiment(dataset: str, opts: argparse.Namespace) -> dict[str, Any]:
    """The experiment config of one setting (without method, sparsity, epochs), with the
    ``--set`` overrides applied."""
    if dataset == "digits":
        tree = {"dataset": "digits", "model": "digits_cnn", "device": opts.device}
    else:
        train = dict(read_yaml(CIFAR_CONFIG)["experiment"]["train"])
        tree = {"dataset": "synthetic", "model": opts.cifar_model, "device": opts.device, "train": train,
                "data": {"image_size": 32, "channels": 3, "num_classes": 10,
                         "train_size": opts.cifar_train_size, "test_size": 256}}
    return apply_overrides(tree, getattr(opts, "set", None) or [])


def experiment(base: dict[str, Any], method: str, sparsity: float, epochs: int, warmup: int,
               **extra: Any) -> dict[str, Any]:
    """Run one experiment and return its metrics."""
    tree = copy.deepcopy(base)
    tree.update(method=method, sparsity=sparsity, warmup_epochs=warmup, **extra)
    tree.setdefault("train", {}).update(epochs=epochs, eval_every=epochs)
    return run_experiment(build_config(tree))


def drive_split(metrics: dict[str, Any]) -> dict[str, float]:
    """A DRIVE run's warm-up and scoring seconds and samples, and its epoch time, from the history."""
    warmup = [h for h in metrics["history"] if h["phase"] == "warmup"]
    prune = next(h for h in metrics["history"] if h["phase"] == "prune")
    warmup_s, warmup_samples = warmup[-1]["prune_time_s"], warmup[-1]["prune_samples"]
    return {"warmup_s": warmup_s, "scoring_s": prune["prune_time_s"] - warmup_s,
            "scoring_samples": prune["prune_samples"] - warmup_samples,
            "epoch_s": warmup_s / len(warmup), "epoch_samples": warmup_samples // len(warmup)}


def costs(dataset: str, opts: argparse.Namespace) -> list[dict[str, Any]]:
    """prune_time_s and prune_samples of every method at every sparsity in one setting."""
    base = base_experiment(dataset, opts)
    if dataset == "digits":
        epochs, warmup = opts.digits_epochs, opts.digits_warmup
    else:
        epochs, warmup = opts.cifar_epochs, opts.cifar_warmup
    sparsities = sorted(opts.sparsities)
    experiment(base, "drive", sparsities[0], 2, 1)  # untimed: first-use costs of kernels and shapes
    rows = []
    for method in opts.methods:
        if method == "imp":  # one run, every sparsity a branch off the trunk
            m = experiment(base, "imp", sparsities[-1], epochs, warmup, imp={"branches": sparsities[:-1]})
            for level in m["levels"]:
                if level["requested"]:
                    rows.append({"dataset": dataset, "method": "imp", "sparsity": level["sparsity"],
                                 "prune_time_s": level["prune_time_s"], "rounds": level["level"],
                                 "prune_samples": level["prune_samples"]})
            trunk = sum(not lv["requested"] for lv in m["levels"])
            print(f"  {dataset} imp: one run, {trunk} other trunk levels and {len(m['levels']) - trunk} "
                  f"requested levels of {epochs} epochs each, "
                  f"{m['wall_time_s']:.1f} s", flush=True)
            continue
        for s in sparsities:
            # the final training is not part of the pruning cost: one epoch of it is enough
            m = experiment(base, method, s, warmup + 1 if method == "drive" else 1, warmup)
            row = {"dataset": dataset, "method": method, "sparsity": s, "prune_time_s": m["prune_time_s"],
                   "prune_samples": m["prune_samples"], "rounds": m["prune_iterations"]}
            if method == "drive":
                row.update(drive_split(m))
            rows.append(row)
        print(f"  {dataset} {method}: done", flush=True)
    imp = {r["sparsity"]: r for r in rows if r["method"] == "imp"}
    for r in rows:
        ref = imp.get(r["sparsity"])
        if ref is None:
            r["imp_time_ratio"] = r["imp_samples_ratio"] = None
            continue
        r["imp_time_ratio"] = ref["prune_time_s"] / r["prune_time_s"] if r["prune_time_s"] > 0 else None
        r["imp_samples_ratio"] = ref["prune_samples"] / r["prune_samples"] if r["prune_samples"] else math.inf
    return rows


def scoring_check(dataset: str, opts: argparse.Namespace) -> dict[str, Any]:
    """DRIVE's scoring time against one training epoch, same model and data (``--check-size``)."""
    base = base_experiment(dataset, opts)
    size = None if dataset == "digits" else opts.check_size
    if size is not None:
        base["data"]["train_size"] = size
    m = experiment(base, "drive", max(opts.sparsities), 2, 1)
    split = drive_split(m)
    return {"dataset": dataset, "model": m["model"], "train_images": split["epoch_samples"],
            "epoch_s": split["epoch_s"], "scoring_s": split["scoring_s"],
            "scoring_samples": split["scoring_samples"], "time_ratio": split["scoring_s"] / split["epoch_s"],
            "samples_ratio": split["scoring_samples"] / split["epoch_samples"],
            "status": verdict(split["scoring_s"] < split["epoch_s"])}


def paper_projection(rate: float = 0.2, epochs: int = 160, n: int = 50_000, batch: int = 128,
                     iterations: int = 10) -> list[dict[str, Any]]:
    """IMP / DRIVE sample passes at the paper's CIFAR-10 scale, from the cost formula (a
    standalone IMP run per sparsity, which is what each branch costs)."""
    rows = []
    for warmup in (5, 10, 20):
        row: dict[str, Any] = {"warmup_epochs": warmup}
        for s in (0.9, 0.95, 0.98):
            imp = imp_rounds(s, rate) * epochs * n
            row[f"ratio_{s:g}"] = imp / (warmup * n + iterations * batch)
        rows.append(row)
    return rows


def run(opts: argparse.Namespace) -> dict[str, Any]:
    print(f"\n== Pruning cost: every method at sparsities {opts.sparsities}; IMP / method ==\n"
          f"digits: digits_cnn, {opts.digits_epochs} epochs (DRIVE warm-up {opts.digits_warmup}); cifar: "
          f"{opts.cifar_model} on {opts.cifar_train_size} synthetic 3x32x32 images, {opts.cifar_epochs} "
          f"epochs (DRIVE warm-up {opts.cifar_warmup}), training settings of {CIFAR_CONFIG.name}"
          + (f"; --set {' '.join(opts.set)}" if getattr(opts, "set", None) else ""), flush=True)
    for dataset in opts.datasets:  # a bad --set fails here, before any experiment runs
        build_config(base_experiment(dataset, opts))
    rows, checks = [], []
    for dataset in opts.datasets:
        rows += costs(dataset, opts)
        if "drive" in opts.methods:
            checks.append(scoring_check(dataset, opts))
    print_table(rows, ["dataset", "method", "sparsity", "rounds", "prune_time_s", "prune_samples",
                       "imp_time_ratio", "imp_samples_ratio"],
                "pruning cost (rounds: IMP rounds / pruning iterations T) and IMP / method")
    drive_rows = [r for r in rows if r["method"] == "drive"]
    print_table(drive_rows, ["dataset", "sparsity", "warmup_s", "scoring_s", "epoch_s", "scoring_samples",
                             "epoch_samples"], "DRIVE's pruning time: warm-up + scoring")
    print_table(checks, ["dataset", "model", "train_images", "epoch_s", "scoring_s", "time_ratio",
                         "scoring_samples", "samples_ratio", "status"],
                "target: DRIVE's scoring (T=10, excluding warm-up) < one training epoch")
    projection = paper_projection()
    print_table(projection, title=f"IMP / DRIVE sample passes projected to CIFAR-10 (N=50,000, 160 epochs, "
                                  f"batch 128, T=10) by the cost formula; the paper reports "
                                  f"{PAPER_RANGE[0]}x-{PAPER_RANGE[1]}x")
    return {"rows": rows, "scoring_check": checks, "paper_projection": projection,
            "targets": [{"target": f"{c['dataset']}: DRIVE scoring < one epoch",
                         "value": f"{c['time_ratio']:.2f} epochs", "status": c["status"]}
                        for c in checks]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_pruning_cost", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", type=csv_list(), default=["digits", "cifar"])
    p.add_argument("--methods", type=csv_list(), default=METHODS)
    p.add_argument("--sparsities", type=csv_list(float), default=[0.9, 0.95, 0.98])
    p.add_argument("--digits-epochs", type=int, default=6, help="epochs per training (IMP: per round)")
    p.add_argument("--digits-warmup", type=int, default=1, help="DRIVE warm-up epochs on digits")
    p.add_argument("--cifar-epochs", type=int, default=8, help="the CIFAR config's 160 / 20")
    p.add_argument("--cifar-warmup", type=int, default=1, help="the CIFAR config's largest warm-up (20) / 20")
    p.add_argument("--cifar-model", default="resnet20")
    p.add_argument("--cifar-train-size", type=int, default=256, help="synthetic CIFAR-shaped training images")
    p.add_argument("--check-size", type=int, default=5000,
                   help="training images of the scoring-vs-epoch check on CIFAR-shaped data")
    p.add_argument("--set", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                   help="a config field of every experiment by dotted name, e.g. train.compile=false "
                        "(repeatable)")
    device_argument(p)
    return p


QUICK = ["--digits-epochs", "2", "--cifar-epochs", "2", "--cifar-train-size", "128",
         "--check-size", "1500", "--sparsities", "0.9,0.95"]


main = entry_point(build_parser, run)


if __name__ == "__main__":
    main()
