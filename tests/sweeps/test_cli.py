"""`drive-sweep run --dry-run`, the confirmation of big grids, `--version` and plain-text help."""

import subprocess

import pytest
import yaml

from sweeps import version
from sweeps.cli import build_parser, main

FAST = {"dataset": "digits", "model": "digits_cnn", "method": "snip", "device": "cpu",
        "train": {"epochs": 1}}


def big_sweep(tmp_path, seeds: int = 1000) -> str:
    """10 sparsities x ``seeds`` seeds of SNIP: 10,000 trials by default."""
    path = tmp_path / "big.yaml"
    path.write_text(yaml.safe_dump({
        "name": "big", "storage": str(tmp_path / "results"), "experiment": FAST,
        "sweep": {"sparsity": [0.5 + i / 100 for i in range(10)], "seed": list(range(seeds))}}))
    return str(path)


def test_dry_run_lists_trials_counts_and_cost_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "cifar10_resnet18", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "126 trials" in out and "nothing written" in out
    assert "... and 106 more grid points" in out
    assert "drive          45   7,200" in out and "in all        126  30,390" in out
    assert list(tmp_path.iterdir()) == []  # no ./results, no experiment folder


def test_a_big_grid_is_refused_without_yes_and_dry_run_lists_it(tmp_path, capsys):
    sweep = big_sweep(tmp_path)
    assert main(["run", sweep]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["drive-sweep: error: sweep: 10,000 trials, more than 1,000 are started only "
                   "when confirmed; add --yes to start them, or --dry-run to list them first"]
    assert not (tmp_path / "results").exists()
    assert main(["run", sweep, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10,000 trials" in out and "... and 9,980 more" in out
    assert not (tmp_path / "results").exists()


def test_dry_run_refuses_a_taken_name(tmp_path, capsys):
    sweep = big_sweep(tmp_path, seeds=1)
    (tmp_path / "results" / "big").mkdir(parents=True)
    (tmp_path / "results" / "big" / "sweep.yaml").write_text("spec: {}\n")
    assert main(["run", sweep, "--dry-run"]) == 2
    assert "name: " in capsys.readouterr().err


def test_version_has_the_package_version_and_the_commit(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"drive-sweep {version.package_version()}")
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=version.SOURCE,
                          capture_output=True, text=True).stdout.strip()
    assert f"(git {head}" in line


def test_version_outside_a_checkout_is_the_version_alone(tmp_path):
    assert version.git_commit(tmp_path) is None
    assert version.version_line(tmp_path) == f"drive-sweep {version.package_version()}"


def test_every_help_is_plain_text(capsys):
    parser = build_parser()
    commands = list(parser._subparsers._group_actions[0].choices)
    for argv in [[], *([c] for c in commands)]:
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = capsys.readouterr().out
        assert "usage: drive-sweep" in text and "``" not in text and "`" not in text, argv
