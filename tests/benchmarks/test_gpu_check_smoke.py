"""benchmarks/gpu_check/: the --cpu smoke end to end (every step gets a status, the tables are
written), its time limits (a step over its limit is killed and the next steps still run), and
its helpers. No timing is asserted."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_check
from benchmarks.gpu_check import plan, report
from benchmarks.gpu_check import steps as step_code
from benchmarks.gpu_check.steps import packing, tests, throughput

ROOT = Path(gpu_check.__file__).resolve().parents[2]
STAMP = re.compile(r"^\[\+ *\d+\.\ds \d\d:\d\d:\d\d\] ")


def _env():
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("OUT", None)
    return env


def _check(tmp_path, *args):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--cpu", "--out", str(out), *args],
                          cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=400)
    data = json.loads((out / "gpu_check.json").read_text())
    return proc, data, {s["name"]: s for s in data["steps"]}, out


def test_the_cpu_smoke_gives_every_step_a_status_and_writes_json_and_markdown(tmp_path):
    proc, data, steps, out = _check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-2000:]
    assert list(steps) == plan.STEP_NAMES and data["finished"] and data["mode"] == "cpu"
    for name, step in steps.items():
        assert step["status"] in plan.STATUSES
        if plan.BY_NAME[name].cpu_skip:  # CUDA-only steps: skipped, and why
            assert step["status"] == "skipped" and step["reason"].startswith("--cpu: "), name
        else:
            assert step["status"] == "ran", (name, step["reason"])
            assert step["result"]["headline"] and step["seconds"] > 0
    assert steps["cuda_tests"]["result"]["outcomes"].get("passed", 0) >= 1
    (row,) = steps["throughput_resnet18"]["result"]["rows"]
    assert row["project_img_s"] > 0 and row["plain_best_img_s"] > 0
    assert row["peak_dtype"] == "float32"  # the CPU trains in float32
    ablation = {r["variant"]: r for r in steps["ablation_resnet18"]["result"]["rows"]}
    assert [v for v, _ in throughput.VARIANTS if v in ablation] == [v for v, _ in throughput.VARIANTS]
    assert ablation["project"]["img_s"] > 0 and ablation["eager_nchw"]["img_s"] > 0
    assert ablation["eager_nchw"]["project_set"] == "compile=false channels_last=false"
    assert ablation["eager_nchw"]["channels_last"] is False  # bench_throughput's --project-set took effect
    assert ablation["no_cuda_graphs"]["status"] == "skipped"  # the same settings as project on a CPU
    assert "--set train.compile=false" in steps["pruning_cost"]["result"]["argv"]
    inference = steps["inference"]["result"]
    assert "--smoke" in inference["argv"] and {r["device"] for r in inference["rows"]} == {"cpu"}
    assert {c["model"] for c in inference["crossover"]} == {"resnet20", "mnist1d_cnn"}
    assert data["versions"]["torch"] and data["versions"]["line"]
    md = (out / "gpu_check.md").read_text()
    assert md.startswith("# gpu_check (cpu)") and "| throughput_resnet18 | ran |" in md
    assert "| nvjpeg | skipped |" in md and "## ablation_resnet18: ran" in md
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert all(STAMP.match(line) for line in lines), [line for line in lines if not STAMP.match(line)][:3]
    assert "gpu_check summary" in proc.stdout
    assert (out / "gpu_check.log").read_text().count("step ") >= len(steps)


def test_a_step_over_its_limit_is_killed_and_the_steps_after_it_still_run(tmp_path):
    """Also runs the CUDA-only steps' code on the CPU: named in --only, the smoke runs them."""
    proc, _, steps, _ = _check(tmp_path, "--only", "env,nvjpeg,packing", "--limit", "env=0.2")
    assert proc.returncode == 1  # a step timed out
    assert steps["env"]["status"] == "timed_out" and "limit" in steps["env"]["reason"]
    assert steps["masks"]["status"] == "skipped" and "--only" in steps["masks"]["reason"]
    assert steps["nvjpeg"]["status"] == "ran", steps["nvjpeg"]["reason"]
    assert {r["decoder"] for r in steps["nvjpeg"]["result"]["rows"]} >= {"cpu, 1 thread"}
    assert steps["packing"]["status"] == "ran", steps["packing"]["reason"]
    rows = steps["packing"]["result"]["rows"]
    assert [r["processes"] for r in rows] == [1, 2] and all(r["aggregate_img_s"] > 0 for r in rows)
    assert rows[0]["vs_one"] == 1


def test_packing_rates_count_only_the_epochs_when_every_process_was_training():
    early = [(10.0, 9.0), (11.0, 1.0), (12.0, 1.0), (13.0, 1.0), (14.0, 1.0)]  # (end time, seconds)
    late = [(12.0, 11.0), (13.5, 1.5), (15.0, 1.5)]  # compiled two seconds later, ends later
    r = packing.packing_rates([early, late], images=100)
    # the window: from 12 (both past their first epoch) to 14 (the first to finish)
    assert r["window_s"] == pytest.approx(2.0) and r["all_overlapping"]
    assert r["rates"] == pytest.approx([100.0, 100 / 1.5])
    assert r["aggregate_img_s"] == pytest.approx(100 + 100 / 1.5)
    alone = packing.packing_rates([early], images=100)
    assert alone["aggregate_img_s"] == pytest.approx(100.0) and alone["window_s"] == pytest.approx(4.0)
    with pytest.raises(ValueError):
        packing.packing_rates([early[:1]], images=100)


def test_cuda_test_ids_finds_the_tests_that_skip_without_cuda(tmp_path):
    (tmp_path / "tests" / "a").mkdir(parents=True)
    (tmp_path / "tests" / "a" / "test_one.py").write_text(
        "import pytest, torch\n\n"
        "def test_plain():\n    pass\n\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')\n"
        "def test_gpu():\n    pass\n\n"
        "@pytest.mark.skipif(\n    not torch.cuda.is_available(),\n    reason='x')\n"
        "class TestOnGpu:\n    def test_x(self):\n        pass\n")
    (tmp_path / "tests" / "test_all.py").write_text(
        "import pytest, torch\npytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='')\n")
    (tmp_path / "tests" / "test_text.py").write_text(  # a decorator inside a string is none
        'SOURCE = (\n    "@pytest.mark.skipif(not torch.cuda.is_available())\\n"\n)\n\n'
        "def test_parses_source():\n    pass\n")
    assert tests.cuda_test_ids(tmp_path) == [
        "tests/a/test_one.py::test_gpu", "tests/a/test_one.py::TestOnGpu", "tests/test_all.py"]
    found = tests.cuda_test_ids()  # this repository has some; this file's strings are not among them
    assert found and not any(node.startswith("tests/benchmarks/") for node in found)


def test_every_step_has_code_and_the_markdown_of_a_partial_run_renders():
    assert list(step_code.CHILD_STEPS) == plan.STEP_NAMES
    data = {"mode": "gpu", "started": "now", "command": "x", "budget_s": 480, "finished": False,
            "versions": {}, "steps": [{"name": "env", "what": "w", "status": "running", "reason": None,
                                       "seconds": None, "limit_s": 60, "result": {"rows": [{"a": 1.5, "b": [1]}],
                                                                                  "inf": float("inf")}}]}
    md = report.markdown(data)
    assert "still running or killed" in md and "| a |" in md and "- inf: inf" in md
    assert json.loads(json.dumps(report.clean(data)))["steps"][0]["result"]["inf"] == "inf"


def test_the_suite_step_leaves_out_test_files_whose_imports_are_not_installed(tmp_path):
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import pytest\nfrom surely_not_installed_pkg import x\n")
    (tmp_path / "tests" / "test_b.py").write_text("import pytest\n\ndef test_b():\n    import surely_not_installed_pkg\n")
    optional = ("surely_not_installed_pkg", "pytest")
    found = tests.missing_import_files(["tests"], tmp_path, optional=optional)
    assert found == {"tests/test_a.py": "surely_not_installed_pkg"}


def test_the_orchestrator_imports_only_the_standard_library_and_lists_the_steps():
    code = ("import sys; from benchmarks.gpu_check import cli, runner; "
            "assert cli.main(['--list']) == 0; "
            "bad = sorted({'torch', 'numpy', 'drive', 'benchmarks.common'} & set(sys.modules)); "
            "assert not bad, bad")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [line.split()[0] for line in proc.stdout.splitlines()] == plan.STEP_NAMES
