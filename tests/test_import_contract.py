"""The dependency order is a contract (pyproject.toml, [tool.importlinter]): `make test` runs
`lint-imports`, and this shows that the tool fails on an import against it."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "HOME": str(tree)}
    return subprocess.run([str(LINT), "--config", str(tree / "pyproject.toml"), "--no-cache"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A copy of the three packages and the contract."""
    out = tmp_path_factory.mktemp("tree")
    for package in ("drive", "sweeps", "analysis"):
        shutil.copytree(ROOT / package, out / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", out)
    return out


def break_it(tree: Path, module: str, line: str) -> Path:
    """``tree`` with ``line`` prepended to ``module``'s source (in a copy of it)."""
    broken = tree.parent / f"broken-{module.replace('/', '-')}"
    shutil.rmtree(broken, ignore_errors=True)
    shutil.copytree(tree, broken)
    path = broken / module
    path.write_text(f"{line}\n{path.read_text()}")
    return broken


def test_the_tree_keeps_the_contract(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module,line,broken", [
    ("drive/errors.py", "import drive.run", "drive layers"),          # the lowest layer reaching up
    ("drive/masks.py", "from drive.experiment import Experiment", "drive layers"),
    ("sweeps/spec.py", "import sweeps.launch", "sweeps layers"),       # a circle spec <-> launch
    ("analysis/results.py", "import torch", "analysis imports no torch"),
    ("drive/train.py", "import sweeps.cli", "drive imports no Ray, sweeps or analysis"),
])
def test_an_import_against_the_contract_fails(tree, module, line, broken):
    result = lint(break_it(tree, module, line))
    assert result.returncode != 0
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout
