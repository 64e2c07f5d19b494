"""`drive-sweep prune`: one experiment from flags and config files, its record, one-line errors."""

import json

import pytest

from drive.masks import keep_count
from drive.record import read_record
from sweeps.cli import main


def metrics(path) -> dict:
    """The experiment's metrics from its record (what `prune --out` writes)."""
    return read_record(path).metrics()

KEYS = {"method", "sparsity", "test_acc", "best_test_acc", "density", "layer_density", "prune_time_s",
        "prune_samples", "train_time_s", "total_time_s"}


def run_prune(*args: str, capsys=None) -> int:
    return main(["prune", "--quiet", "--device", "cpu", *args])


def test_drive_on_digits_at_90_percent_keeps_10_percent_within_3_points_of_dense(tmp_path):
    """The issue's acceptance check, with the CLI's default (embedded) config."""
    assert run_prune("--out", str(tmp_path / "drive.jsonl")) == 0
    assert run_prune("--method", "dense", "--out", str(tmp_path / "dense")) == 0  # no suffix: a file
    drive, dense = metrics(tmp_path / "drive.jsonl"), metrics(tmp_path / "dense")
    assert KEYS <= set(drive)
    assert (drive["method"], drive["sparsity"], dense["method"]) == ("drive", 0.9, "dense")
    assert drive["params_remaining"] == keep_count(0.1, drive["params_prunable"])
    assert abs(drive["density"] - 0.1) < 1e-4
    assert 0 <= drive["test_acc"] <= 1
    assert drive["test_acc"] >= dense["test_acc"] - 0.03


def test_flags_config_file_and_set_compose(tmp_path, capsys):
    cfg = tmp_path / "exp.yaml"
    cfg.write_text("method: snip\nsparsity: 0.8\ntrain: {epochs: 3, batch_size: 128}\n")
    out = tmp_path / "m.jsonl"
    assert run_prune("--config", str(cfg), "--sparsity", "0.5", "--epochs", "1", "--seed", "3",
                     "--set", "model_args={width: 0.5}", "--out", str(out)) == 0
    m = metrics(out)
    assert (m["method"], m["sparsity"], m["epochs"], m["seed"]) == ("snip", 0.5, 1, 3)
    assert m["config"]["model_args"] == {"width": 0.5} and m["config"]["train"]["batch_size"] == 128
    printed = capsys.readouterr().out
    assert "method snip" in printed and "achieved density 0.5000" in printed


def test_checkpoint_file_resumes_a_run(tmp_path):
    ck = tmp_path / "state.pt"
    args = ["--method", "magnitude", "--sparsity", "0.5", "--epochs", "2", "--checkpoint", str(ck)]
    assert run_prune(*args, "--out", str(tmp_path / "a.jsonl")) == 0
    assert ck.exists()
    # the checkpoint holds a finished run: resuming it re-runs nothing and gives the same result
    assert run_prune(*args, "--out", str(tmp_path / "b.jsonl")) == 0
    a, b = (metrics(tmp_path / f) for f in ("a.jsonl", "b.jsonl"))
    assert a["test_acc"] == b["test_acc"] and a["history"] == b["history"]


@pytest.mark.parametrize("args,line", [
    (["--method", "obd"], "method: unknown method 'obd'; allowed: dense, drive, erk, force"),
    (["--sparsity", "1.5"], "sparsity: must be in [0, 1)"),
    (["--sparsity", "-0.2"], "sparsity: must be in [0, 1)"),
    (["--warmup-epochs", "12", "--epochs", "12"], "warmup_epochs: must be less than train.epochs (12), got 12"),
    (["--prune-iterations", "0"], "prune_iterations: must be an integer in [1, 10000]"),
    (["--sparsity", "0.999999"], "sparsity: 0.999999 keeps none of digits_cnn's 93728 prunable "
     "weights (round(1e-06 x 93728) = 0); at most 0.999994 keeps one"),
    (["--epochs", "0"], "train.epochs: Input should be greater than or equal to 1"),
    (["--model", "resnet999"], "model: unknown model 'resnet999'"),
    (["--dataset", "mnist"], "dataset: unknown dataset 'mnist'"),
    (["--set", "train.lr=fast"], "train.lr: Input should be a valid number"),
    (["--set", "nonsense"], "--set nonsense: expected key=value"),
    (["--config", "/nonexistent.yaml"], "--config: file not found: /nonexistent.yaml"),
    (["--config", "/"], "--config: cannot read / (Is a directory)"),
    (["--method", "snip", "--dataset", "cifar10", "--set", "data.root=/nonexistent"], "data.root:"),
])
def test_bad_input_is_one_line_and_exit_2(args, line, capsys, tmp_path):
    out = tmp_path / "never.jsonl"
    assert run_prune(*args, "--out", str(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"drive-sweep: error: {line}"), err
    assert not out.exists()


def test_unwritable_output_fails_before_running(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run_prune("--out", str(blocker / "sub" / "m.json")) == 2
    assert "--out: cannot write" in capsys.readouterr().err


def test_unreadable_checkpoint_is_one_line(tmp_path, capsys):
    ck = tmp_path / "state.pt"
    ck.write_text("garbage")
    assert run_prune("--checkpoint", str(ck)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drive-sweep: error: checkpoint: cannot read")


def test_the_record_grows_line_by_line_and_ends(tmp_path):
    """The contract: start (identity, config) first, one line per epoch as it happens, end last."""
    out = tmp_path / "run.jsonl"
    seen = []

    class Spy:
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, p):
            seen.append(len(out.read_text().splitlines()))  # lines on disk at each epoch

    import drive.run as runner

    original = runner.record_experiment

    def spying(exp, recorder, callback=None):
        return original(exp, recorder, Spy(callback))

    runner.record_experiment = spying
    try:
        assert run_prune("--method", "snip", "--epochs", "2", "--set", "data.val_fraction=0.1",
                         "--out", str(out)) == 0
    finally:
        runner.record_experiment = original
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["event"] for x in lines] == ["start", "epoch", "epoch", "epoch", "end"]
    assert seen == [2, 3, 4]  # each epoch's line was flushed before training went on
    start, end = lines[0], lines[-1]
    assert (start["method"], start["sparsity"], start["config"]["data"]["val_fraction"]) == ("snip", 0.9, 0.1)
    assert end["status"] == "finished" and 0 <= end["val_acc"] <= 1 and "history" not in end
    assert all("val_acc" in x for x in lines[2:4]) and "val_acc" not in lines[1]  # prune: not evaluated


def nan_scores(ctx):
    """Scores of a method gone wrong: NaN everywhere."""
    import torch

    return {name: torch.full_like(w, float("nan")) for name, w in ctx.weights.items()}


from drive.method import Method  # noqa: E402 - the method below is named by import path

NAN = Method("nan_scores", score=nan_scores, label="NaN", color="#000000", marker="x")


def test_nan_scores_end_the_run_with_one_line_exit_1_and_an_errored_record(tmp_path, capsys):
    """README: no NaN score is ever ranked; the run ends with one line naming the method and the
    layer (it used to end in a traceback)."""
    out = tmp_path / "nan.jsonl"
    assert run_prune("--method", "tests.sweeps.test_cli_prune:NAN", "--epochs", "1",
                     "--out", str(out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("drive-sweep: error: tests.sweeps.test_cli_prune:NAN: "), err
    assert "are NaN or infinite; they cannot be ranked" in err[0]
    assert metrics(out)["status"] == "errored"


def test_a_method_in_the_current_folder_imports_as_in_the_trials(tmp_path, monkeypatch, capsys):
    """`drive-sweep prune --method mypkg.methods:SQUARED` from the folder holding mypkg (README),
    without PYTHONPATH: the console script's sys.path does not hold the current folder."""
    import sys

    (tmp_path / "hostile_pkg").mkdir()
    (tmp_path / "hostile_pkg" / "__init__.py").write_text("")
    (tmp_path / "hostile_pkg" / "methods.py").write_text(
        "from drive.method import Method\n\n"
        "def squared(ctx):\n    return {n: w.detach() ** 2 for n, w in ctx.weights.items()}\n\n"
        "SQUARED = Method('squared', score=squared, label='w2', color='#112233', marker='*')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    out = tmp_path / "sq.jsonl"
    assert run_prune("--method", "hostile_pkg.methods:SQUARED", "--epochs", "1", "--out", str(out)) == 0
    assert metrics(out)["method"] == "hostile_pkg.methods:SQUARED"


@pytest.mark.parametrize("sparsity", [0.999, 0.999994])
def test_extreme_sparsities_keep_exactly_their_count(sparsity, tmp_path):
    """0.999994 is the highest sparsity at which digits_cnn keeps a weight: exactly one."""
    out = tmp_path / "m.jsonl"
    assert run_prune("--method", "snip", "--epochs", "1", "--sparsity", str(sparsity), "--out", str(out)) == 0
    m = metrics(out)
    assert m["params_remaining"] == keep_count(1 - sparsity, m["params_prunable"]) >= 1


@pytest.mark.parametrize("sig,code,name", [("SIGINT", 130, "Ctrl-C"), ("SIGTERM", 143, "SIGTERM")])
def test_ctrl_c_or_sigterm_ends_prune_with_one_line_its_exit_code_and_an_interrupted_record(
        sig, code, name, tmp_path):
    """Ctrl-C used to end in a KeyboardInterrupt traceback (the record was right); SIGTERM ended
    it at once, its record left `running`."""
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps.cli", "prune", "--quiet", "--device", "cpu", "--method",
         "magnitude", "--epochs", "500", "--out", str(out), "--checkpoint", str(tmp_path / "s.pt")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # not ignored, as in a terminal
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or '"event":"epoch"' not in out.read_text()):
        time.sleep(0.2)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code
    assert err.strip().splitlines() == [
        f"drive-sweep: interrupted by {name}; run the same command again to continue from --checkpoint"]
    assert (metrics(out)["status"], metrics(out)["reason"]) == ("interrupted", f"stopped by {name}")


@pytest.mark.parametrize("epochs,warmup", [(2, 1), (1, 0)])
def test_epochs_shorter_than_the_default_warmup_shorten_it(epochs, warmup, tmp_path, capsys):
    out = tmp_path / "run.jsonl"
    assert run_prune("--epochs", str(epochs), "--out", str(out)) == 0
    assert metrics(out)["config"]["warmup_epochs"] == warmup
    assert f"warmup_epochs: {warmup} (the default 2, shortened" in capsys.readouterr().err


def test_an_explicit_warmup_too_long_names_the_value_that_works(capsys):
    assert run_prune("--epochs", "2", "--warmup-epochs", "2") == 2
    assert capsys.readouterr().err.strip() == (
        "drive-sweep: error: warmup_epochs: must be less than train.epochs (2), got 2; set "
        "warmup_epochs (--warmup-epochs) to 1 or less")
