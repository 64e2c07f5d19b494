"""A researcher's own method, with two hyperparameters, in a package outside the repository:
it runs in `drive-sweep prune`, a sweep varies one of its hyperparameters for it alone, and the
report labels it, with no file of the tool edited (issue #15)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drive.record import read_record

PACKAGE = '''
"""A user's pruning method: keep the largest |w|^p + mix * |g|, g the loss gradient."""
from pydantic import Field

from drive.method import Method, MethodArgs
from drive.scores import loss_gradients


class PowerArgs(MethodArgs):
    p: float = Field(2.0, gt=0, description="the exponent of |w|")
    mix: float = Field(0.0, ge=0, title="g-mix", description="how much |g| counts")


def score(ctx):
    args = ctx.arguments(PowerArgs)
    grads = loss_gradients(ctx) if args.mix else {}
    return {n: w.detach().abs() ** args.p + (args.mix * grads[n].abs() if args.mix else 0)
            for n, w in ctx.weights.items()}


POWER = Method("power", score, args=PowerArgs, data=True, label="|w|^p (mine)",
               color="#123456", marker="*", reference="a researcher, 2026")
'''
PATH = "mypruning.methods:POWER"
FAST = ["--epochs", "1", "--set", "train.batch_size=128", "--set", "model_args.width=0.5",
        "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """``mypruning`` in a folder of its own, outside the repository."""
    root = tmp_path_factory.mktemp("userland")
    (root / "mypruning").mkdir()
    (root / "mypruning" / "__init__.py").write_text("")
    (root / "mypruning" / "methods.py").write_text(PACKAGE)
    return root


def cli(package: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(package), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "sweeps.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_prune_runs_it_with_its_arguments_and_a_typo_is_one_line(package, tmp_path):
    out = tmp_path / "power.jsonl"
    done = cli(package, tmp_path, "prune", "--method", PATH, "--sparsity", "0.8", *FAST,
               "--set", "power.p=1", "--set", "power.mix=0", "--out", str(out))
    assert done.returncode == 0, done.stderr
    record = read_record(out)
    assert record.status == "finished"
    assert record.config["power"] == {"p": 1.0, "mix": 0.0}
    assert record.start["method_info"]["label"] == "|w|^p (mine)"
    # with mix 0 and p 1 it ranks like magnitude: the same mask as magnitude on the same network
    ref = tmp_path / "magnitude.jsonl"
    assert cli(package, tmp_path, "prune", "--method", "magnitude", "--sparsity", "0.8", *FAST,
               "--out", str(ref)).returncode == 0
    assert record.metrics()["layer_density"] == read_record(ref).metrics()["layer_density"]

    typo = cli(package, tmp_path, "prune", "--method", PATH, *FAST, "--set", "power.pp=3")
    assert typo.returncode == 2
    assert typo.stderr.strip().splitlines() == [
        f"drive-sweep: error: power.pp: unknown argument of method {PATH} (its arguments: p, mix)"]
    bad = cli(package, tmp_path, "prune", "--method", PATH, *FAST, "--set", "power.p=-1")
    assert bad.returncode == 2
    assert bad.stderr.strip() == "drive-sweep: error: power.p: Input should be greater than 0"


def test_a_sweep_varies_its_argument_for_it_alone_and_the_report_labels_it(package, tmp_path):
    sweep = tmp_path / "mine.yaml"
    sweep.write_text(textwrap.dedent(f"""\
        name: mine
        storage: {tmp_path / "results"}
        experiment:
          dataset: digits
          model: digits_cnn
          model_args: {{width: 0.5}}
          device: cpu
          train: {{epochs: 1, batch_size: 128}}
          power: {{mix: 0.5}}
        sweep:
          method: [snip, magnitude, "{PATH}"]
          sparsity: [0.5, 0.9]
          power.p: [1, 3]
        resources: {{cpu: 1}}
        loggers: [json]
        """))
    done = cli(package, tmp_path, "run", str(sweep))
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "results" / "mine"
    records = [read_record(p) for p in folder.glob("*/metrics.jsonl")]
    counts: dict[str, int] = {}
    for r in records:
        counts[r.start["method"]] = counts.get(r.start["method"], 0) + 1
    # the axis varies for the plugin alone: snip and magnitude keep one trial per sparsity
    assert counts == {"snip": 2, "magnitude": 2, PATH: 4}
    settings = {(r.start["sparsity"], r.config["power"]["p"], r.config["power"]["mix"])
                for r in records if r.start["method"] == PATH}
    assert settings == {(s, p, 0.5) for s in (0.5, 0.9) for p in (1.0, 3.0)}
    assert all("power" not in r.config for r in records if r.start["method"] != PATH)

    # the report, made where the package cannot be imported, labels it from its records
    report = subprocess.run([sys.executable, "-m", "sweeps.cli", "report", str(folder), "--out",
                             str(tmp_path / "report")], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""})
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert r"\|w\|^p (mine) (p 1)" in text and r"\|w\|^p (mine) (p 3)" in text  # Markdown-escaped
    assert (tmp_path / "report" / "figures" / "accuracy_vs_sparsity.png").stat().st_size > 10_000
    assert "![A method's arguments" in text  # the plugin's own argument ablation is drawn
    import pandas as pd

    rows = pd.read_csv(tmp_path / "report" / "results.csv")
    mine = rows[rows["method"] == PATH]
    assert set(mine["method_label"]) == {"|w|^p (mine)"} and set(mine["plan"]) == {"at_init"}
