"""One timed pass over every GPU path of the project, for a short lease on a GPU machine.

    python3 -m benchmarks.gpu_check                  # on the GPU machine (``make gpu-check``)
    python3 -m benchmarks.gpu_check --cpu            # the same steps at tiny sizes on a CPU
    python3 -m benchmarks.gpu_check --only packing,ablation_resnet18 --budget 300

The steps run in the order below, most valuable first, each in a process of its own (its own
process group) with a time limit; a step that overruns is killed and recorded as ``timed_out``
and the later steps still run. The whole check keeps to ``--budget`` seconds (default 480, 8
minutes): a step gets at most what is left, and a step that would get less than its minimum is
``skipped``. Every step ends as ``ran``, ``skipped`` (with the reason), ``failed`` (an error, or
a test that failed) or ``timed_out``.

Results go to ``--out`` (default ``$OUT``, else a new folder under /tmp): ``gpu_check.json``
(every figure), ``gpu_check.md`` (tables) and ``gpu_check.log`` (all output), all three
rewritten after every step, so that a run killed from outside keeps what it measured so far.
Every line printed carries the time since the start, so a killed run shows how far it got.

Steps (``--list`` prints them with their limits):

* env: Python, torch, torchvision, CUDA, cuDNN, the GPU and driver, package versions, that the
  project imports; a bf16 matmul and a device copy as ceilings; one tiny torch.compile.
* cuda_tests: every test that skips without CUDA (found by scanning tests/ for ``skipif`` on
  ``cuda.is_available``), under pytest.
* throughput_resnet18, throughput_vgg16_bn: ``benchmarks.bench_throughput`` (project path vs
  the plain and the best plain recipe) on a full 50,000-image synthetic CIFAR epoch.
* nvjpeg: JPEGs made in memory, decoded on the CPU (one thread, and a thread pool) and in
  batches on the GPU (``torchvision.io.decode_jpeg(..., device="cuda")``); images/s, and how far
  the GPU's pixels are from the CPU's.
* masks: ``benchmarks.bench_masks`` (90%-sparse step vs dense step) on the GPU.
* inference: ``benchmarks.bench_inference --device cuda`` where that module exists.
* packing: fractional GPU packing as Ray's ``gpu: 0.25`` does it: 1, then 4 ``drive-sweep prune``
  processes training at once on the one GPU; steady-state images/s of all together over one's.
* ablation_resnet18 (and, after pruning_cost, ablation_vgg16_bn): the project path with bf16,
  channels_last, compile and CUDA graphs each turned off, against the default and the best plain
  recipe (bench_throughput has no flags for these: its cases are built here with other
  ``TrainConfig`` fields).
* pruning_cost: ``benchmarks.bench_pruning_cost`` on the GPU (eager: see ``--pruning-compile``).
* imagenet_input: ``benchmarks.bench_imagenet_input`` (PIL / CPU / device decoding in the loader).
* drive_suite: the whole ``tests/drive`` suite on the machine's torch, with what time is left.

The orchestrating process imports nothing but the standard library; the steps import torch.
It runs on torch >= 2.4 and records the versions it ran on.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a file (python3 benchmarks/gpu_check.py)
    sys.path.insert(0, str(ROOT))

STATUSES = ("ran", "skipped", "failed", "timed_out")
DEFAULT_BUDGET_S = 480.0
CPU_BUDGET_S = 150.0
CIFAR_TRAIN = 50_000
KILL_GRACE_S = 5.0


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    limit_s: float  # on the GPU machine
    cpu_limit_s: float = 60.0  # in the --cpu smoke
    min_s: float = 10.0  # skipped when less than this is left of the budget
    cpu_skip: str | None = None  # why the --cpu smoke skips it (unless named in --only)


ONE_MODEL = "the ResNet-18 step runs the same code (one model keeps the smoke short)"
STEPS = [
    Step("env", "versions, GPU, driver, imports, bf16 matmul and copy ceilings, a tiny compile", 60, 60, 5),
    Step("cuda_tests", "the tests that skip without CUDA, under pytest", 120),
    Step("throughput_resnet18", "bench_throughput, ResNet-18, 50,000-image epoch: project vs plain", 170),
    Step("throughput_vgg16_bn", "bench_throughput, VGG-16-BN, 50,000-image epoch: project vs plain", 140,
         cpu_skip=ONE_MODEL),
    Step("nvjpeg", "JPEG decoding: CPU (1 thread, thread pool) vs batched nvJPEG on the GPU", 45,
         cpu_skip="needs CUDA (nvJPEG)"),
    Step("masks", "bench_masks: 90%-sparse masked step vs dense step", 50),
    Step("inference", "bench_inference --device cuda (2:4 semi-structured / CSR), if present", 60,
         cpu_skip="needs CUDA (2:4 semi-structured kernels)"),
    Step("packing", "4 drive-sweep prune processes sharing the GPU vs 1: throughput ratio", 150,
         cpu_skip="needs CUDA (GPU packing)", min_s=40),
    Step("ablation_resnet18", "project path, ResNet-18: bf16 / channels_last / compile / CUDA graphs off", 150,
         min_s=45),
    Step("pruning_cost", "bench_pruning_cost: IMP vs every method, time and sample passes", 90, min_s=30),
    Step("ablation_vgg16_bn", "project path, VGG-16-BN: bf16 / channels_last / compile / CUDA graphs off", 130,
         min_s=45, cpu_skip=ONE_MODEL),
    Step("imagenet_input", "bench_imagenet_input: PIL / CPU / device (nvJPEG) decoding in the loader", 60,
         min_s=30, cpu_skip="needs CUDA (the device decoder)"),
    Step("drive_suite", "tests/drive on this machine's torch, with the time left", 600, min_s=30,
         cpu_skip="the CPU suite is `make test`"),
]
STEP_NAMES = [s.name for s in STEPS]
BY_NAME = {s.name: s for s in STEPS}


# ---- helpers shared by both sides ------------------------------------------------------------

def clean(value: Any) -> Any:
    """``value`` made strict-JSON-safe: non-finite floats as strings, tuples as lists, the rest
    that JSON cannot hold as ``str``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Write atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(clean(data), indent=1, allow_nan=False))
    os.replace(tmp, path)


def csv_list(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    return str(v)


class Clock:
    """Timestamps relative to the start: ``[+  12.3s 14:02:07]``."""

    def __init__(self, start: float | None = None):
        self.start = time.time() if start is None else start

    def stamp(self) -> str:
        return f"[+{time.time() - self.start:7.1f}s {datetime.datetime.now().strftime('%H:%M:%S')}]"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m benchmarks.gpu_check", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cpu", action="store_true",
                   help="the smoke mode: tiny sizes on the CPU, CUDA-only steps skipped")
    p.add_argument("--out", default=None, help="results folder (default $OUT, else /tmp/gpu_check-DATE)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for the whole check (default {DEFAULT_BUDGET_S:g}; --cpu {CPU_BUDGET_S:g})")
    p.add_argument("--only", type=csv_list, default=None, help="comma-separated steps to run")
    p.add_argument("--skip", type=csv_list, default=[], help="comma-separated steps to leave out")
    p.add_argument("--limit", action="append", default=[], metavar="STEP=SECONDS",
                   help="another time limit for a step (repeatable)")
    p.add_argument("--list", action="store_true", help="print the steps and their limits, run nothing")
    sizes = p.add_argument_group("sizes (defaults depend on --cpu)")
    sizes.add_argument("--images", type=int, default=None, help="throughput: images per epoch (50000)")
    sizes.add_argument("--batch-size", type=int, default=None, help="throughput: batch size (128)")
    sizes.add_argument("--repeat", type=int, default=None, help="throughput: timed epochs per case (2)")
    sizes.add_argument("--ablation-repeat", type=int, default=None,
                       help="ablation: timed epochs per variant (1; the compiled ones after a whole warm-up epoch)")
    sizes.add_argument("--workers", type=int, default=None, help="DataLoader workers of the plain recipes")
    sizes.add_argument("--jpeg-images", type=int, default=None, help="nvjpeg: JPEGs decoded per pass (512)")
    sizes.add_argument("--packing-procs", type=int, default=None, help="packing: processes at once (4)")
    sizes.add_argument("--packing-model", default=None, help="packing: model (resnet18)")
    sizes.add_argument("--packing-images", type=int, default=None,
                       help="packing: synthetic training images (19968: 156 batches of 128)")
    sizes.add_argument("--packing-epochs", type=int, default=None, help="packing: epochs per process (8)")
    sizes.add_argument("--pruning-compile", choices=["off", "auto"], default="off",
                       help="pruning_cost: train.compile of its experiments (off: every experiment is a "
                            "new model, which torch.compile would compile again)")
    sizes.add_argument("--inference-args", default="", help="inference: extra arguments of bench_inference")
    sizes.add_argument("--suite", default="tests/drive", help="drive_suite: the test paths")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-out", default=None, help=argparse.SUPPRESS)
    p.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    return p


def sizes(opts: argparse.Namespace) -> dict[str, Any]:
    """The sizes of this mode, with the options given overriding them."""
    cores = os.cpu_count() or 1
    if opts.cpu:
        base = {"images": 4, "batch_size": 2, "repeat": 1, "ablation_repeat": 1, "workers": 0, "jpeg_images": 8,
                "packing_procs": 2, "packing_model": "digits_cnn", "packing_images": None,
                "packing_epochs": 3, "device": "cpu"}
    else:
        base = {"images": CIFAR_TRAIN, "batch_size": 128, "repeat": 2, "ablation_repeat": 1, "workers": min(8, cores),
                "jpeg_images": 512, "packing_procs": 4, "packing_model": "resnet18",
                "packing_images": 156 * 128, "packing_epochs": 8, "device": "cuda"}
    for key in list(base):
        given = getattr(opts, key, None)
        if given is not None:
            base[key] = given
    return base


# ---- the orchestrator -------------------------------------------------------------------------

class Report:
    """The check's state, written as JSON, Markdown and a log after every change."""

    def __init__(self, out: Path, opts: argparse.Namespace, argv: list[str], budget: float):
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        self.clock = Clock()
        self.log_file = open(out / "gpu_check.log", "a", encoding="utf-8", buffering=1)
        self.data: dict[str, Any] = {
            "tool": "benchmarks/gpu_check.py", "mode": "cpu" if opts.cpu else "gpu",
            "command": "python3 -m benchmarks.gpu_check " + " ".join(shlex.quote(a) for a in argv),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "budget_s": budget, "finished": False, "versions": {}, "sizes": sizes(opts),
            "steps": [{"name": s.name, "what": s.what, "status": "pending", "reason": None,
                       "seconds": None, "limit_s": None, "result": {}} for s in STEPS]}
        self.lock = threading.RLock()  # also taken by the signal handler
        self.current: subprocess.Popen | None = None  # the running step's process
        self.data["out"] = str(out)

    def step(self, name: str) -> dict[str, Any]:
        return next(s for s in self.data["steps"] if s["name"] == name)

    def say(self, message: str) -> None:
        with self.lock:
            for line in message.splitlines() or [""]:
                text = f"{self.clock.stamp()} {line}"
                print(text, flush=True)
                self.log_file.write(text + "\n")

    def save(self) -> None:
        self.data["updated"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.data["elapsed_s"] = round(time.time() - self.clock.start, 1)
        write_json(self.out / "gpu_check.json", self.data)
        tmp = self.out / "gpu_check.md.tmp"
        tmp.write_text(markdown(self.data))
        os.replace(tmp, self.out / "gpu_check.md")


def run_child(report: Report, name: str, opts_argv: list[str], limit: float, work: Path
              ) -> tuple[str, str | None, dict[str, Any], float]:
    """Run one step in its own process group; (status, reason, result, seconds)."""
    result_path = work / f"{name}.json"
    deadline = time.time() + limit
    cmd = [sys.executable, "-u", "-m", "benchmarks.gpu_check", *opts_argv, "--child", name,
           "--child-out", str(result_path), "--deadline", f"{deadline:.1f}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"start_new_session": True}
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, **group)
    report.current = proc

    def pump() -> None:
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            report.say(f"  {name} | {raw.decode('utf-8', 'replace').rstrip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        timed_out = True
        report.say(f"step {name}: over its limit of {limit:.3g} s, killing its process group")
    kill_group(proc)
    reader.join(timeout=5)
    report.current = None
    seconds = time.time() - start
    try:
        result = json.loads(result_path.read_text())
    except (OSError, ValueError):
        result = {}
    if timed_out:
        return "timed_out", f"killed after {limit:.3g} s (its limit); partial results kept", result, seconds
    if proc.returncode == 0:
        return "ran", result.pop("note", None), result, seconds
    reason = result.pop("reason", None) or result.get("error") or f"exit code {proc.returncode}"
    return "failed", reason, result, seconds


def kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the step's process group (its DataLoader workers, compile workers, drive-sweep
    processes), SIGKILL what is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=KILL_GRACE_S)
    except subprocess.TimeoutExpired:
        pass


def step_limits(opts: argparse.Namespace) -> dict[str, float]:
    limits = {s.name: (s.cpu_limit_s if opts.cpu else s.limit_s) for s in STEPS}
    for item in opts.limit:
        name, _, value = item.partition("=")
        if name not in limits:
            raise SystemExit(f"gpu_check: --limit: unknown step {name!r}; steps: {', '.join(STEP_NAMES)}")
        limits[name] = float(value)
    return limits


def orchestrate(opts: argparse.Namespace, argv: list[str]) -> int:
    unknown = sorted(set((opts.only or []) + opts.skip) - set(STEP_NAMES))
    if unknown:
        raise SystemExit(f"gpu_check: unknown step(s) {', '.join(unknown)}; steps: {', '.join(STEP_NAMES)}")
    limits = step_limits(opts)
    budget = opts.budget if opts.budget is not None else (CPU_BUDGET_S if opts.cpu else DEFAULT_BUDGET_S)
    if opts.list:
        for s in STEPS:
            print(f"{s.name:22s} limit {limits[s.name]:5.0f} s  {s.what}"
                  + (f"  [--cpu: skipped, {s.cpu_skip}]" if s.cpu_skip else ""))
        return 0
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(opts.out or os.environ.get("OUT") or f"/tmp/gpu_check-{stamp}")
    report = Report(out, opts, argv, budget)
    child_argv = list(argv)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_work_"))

    def stop(signum: int, _frame: Any) -> None:
        proc = report.current
        if proc is not None:
            kill_group(proc)
        for s in report.data["steps"]:
            if s["status"] == "running":
                s.update(status="timed_out", reason=f"gpu_check was stopped (signal {signum})")
            elif s["status"] == "pending":
                s.update(status="skipped", reason=f"gpu_check was stopped (signal {signum})")
        report.say(f"gpu_check: stopped by signal {signum}; results so far in {out}")
        report.save()
        os._exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, stop)

    report.say(f"gpu_check ({report.data['mode']} mode): budget {budget:.0f} s, results in {out}")
    report.say(f"sizes: {json.dumps(report.data['sizes'])}")
    report.save()
    deadline = report.clock.start + budget
    no_cuda: str | None = None
    for s in STEPS:
        entry = report.step(s.name)
        left = deadline - time.time()
        reason = None
        if opts.only is not None and s.name not in opts.only:
            reason = "not selected (--only)"
        elif s.name in opts.skip:
            reason = "not selected (--skip)"
        elif opts.cpu and s.cpu_skip and not (opts.only and s.name in opts.only):
            reason = f"--cpu: {s.cpu_skip}"
        elif no_cuda and s.name != "env":
            reason = no_cuda
        elif s.name == "inference" and not (ROOT / "benchmarks" / "bench_inference.py").exists():
            reason = "benchmarks/bench_inference.py does not exist (yet)"
        elif left < s.min_s:
            reason = f"time budget spent ({max(left, 0):.0f} s left of {budget:.0f} s; needs {s.min_s:.0f} s)"
        if reason is not None:
            entry.update(status="skipped", reason=reason)
            report.say(f"step {s.name}: skipped: {reason}")
            report.save()
            continue
        limit = min(limits[s.name], left)
        entry.update(status="running", limit_s=round(limit, 1),
                     started=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
        report.say(f"step {s.name}: start (limit {limit:.0f} s, {left:.0f} s of the budget left): {s.what}")
        report.save()
        try:
            status, why, result, seconds = run_child(report, s.name, child_argv, limit, work)
        except Exception as e:  # the orchestrator must go on to the next step
            status, why, result, seconds = "failed", f"{type(e).__name__}: {e}", {}, 0.0
        entry.update(status=status, reason=why, seconds=round(seconds, 1), result=result)
        report.say(f"step {s.name}: {status} in {seconds:.1f} s" + (f" ({why})" if why else "")
                   + (f": {result['headline']}" if result.get("headline") else ""))
        if s.name == "env" and status == "ran":
            report.data["versions"] = result.get("versions", {})
            if not opts.cpu and not result.get("cuda_available"):
                no_cuda = "CUDA is not available (see env): nothing to check on a GPU; --cpu is the CPU smoke"
        report.save()
    report.data["finished"] = True
    report.save()
    report.say(summary(report.data))
    bad = [s["name"] for s in report.data["steps"] if s["status"] in ("failed", "timed_out")]
    try:
        for f in work.iterdir():
            f.unlink()
        work.rmdir()
    except OSError:
        pass
    return 1 if bad else 0


def summary(data: dict[str, Any]) -> str:
    lines = [f"== gpu_check summary ({data['mode']}, {data.get('elapsed_s', 0):.0f} s of {data['budget_s']:.0f} s) ==",
             data.get("versions", {}).get("line", "")]
    for s in data["steps"]:
        head = s["result"].get("headline") if s["result"] else None
        extra = f"  {head}" if head else ""
        why = f"  ({s['reason']})" if s["reason"] else ""
        secs = f"{s['seconds']:6.1f}s" if s["seconds"] is not None else "       "
        lines.append(f"{s['name']:20s} {s['status']:9s} {secs}{why}{extra}")
    lines.append(f"results: {data.get('out', '')}")
    return "\n".join(line for line in lines if line is not None)


def markdown(data: dict[str, Any]) -> str:
    """The report as Markdown: the steps, then each step's tables."""
    v = data.get("versions", {})
    md = [f"# gpu_check ({data['mode']}), {data['started']}", ""]
    if v.get("line"):
        md += [v["line"], ""]
    md += [f"Command: `{data['command']}`; budget {data['budget_s']:.0f} s, "
           f"{data.get('elapsed_s', 0):.0f} s elapsed{'' if data['finished'] else ' (still running or killed)'}.", "",
           "| step | status | seconds | limit | headline / reason |", "| --- | --- | --- | --- | --- |"]
    for s in data["steps"]:
        text = (s["result"] or {}).get("headline") or ""
        if s["reason"]:
            text = f"{text} ({s['reason']})" if text else s["reason"]
        md.append(f"| {s['name']} | {s['status']} | {fmt(s['seconds'])} | {fmt(s['limit_s'])} | "
                  f"{text.replace('|', '/')} |")
    for s in data["steps"]:
        result = s["result"] or {}
        tables = [(k, v) for k, v in result.items() if isinstance(v, list) and v and all(isinstance(r, dict) for r in v)]
        scalars = {k: (v if not isinstance(v, dict) else json.dumps(clean(v))[:400]) for k, v in result.items()
                   if k != "headline" and not isinstance(v, list)}
        if not tables and not scalars:
            continue
        md += ["", f"## {s['name']}: {s['status']}", "", s["what"], ""]
        for k, val in scalars.items():
            md.append(f"- {k}: {fmt(val)}")
        for key, rows in tables:
            columns: list[str] = []
            for r in rows:
                columns += [c for c, x in r.items() if c not in columns and not isinstance(x, (list, dict))]
            if not columns:
                continue
            md += ["", f"{key}:", "", "| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
            for r in rows:
                md.append("| " + " | ".join(fmt(r.get(c)).replace("|", "/") for c in columns) + " |")
    return "\n".join(md) + "\n"


# ---- the steps (each runs in a child process) -----------------------------------------------

class Partial:
    """A step's result, rewritten to its file after every update (kept if the step is killed)."""

    def __init__(self, path: Path):
        self.path, self.data = path, {}

    def update(self, **items: Any) -> None:
        self.data.update(items)
        write_json(self.path, self.data)

    def add(self, key: str, row: dict[str, Any]) -> None:
        self.data.setdefault(key, []).append(row)
        write_json(self.path, self.data)


def say(message: str) -> None:
    print(message, flush=True)


def _device(opts: argparse.Namespace):
    import torch

    return torch.device(sizes(opts)["device"])


def step_env(opts: argparse.Namespace, rec: Partial) -> None:
    import importlib
    import importlib.metadata as md
    import platform

    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                                "executable": sys.executable, "cores": os.cpu_count()}
    for pkg in ("torch", "torchvision", "triton", "numpy", "pydantic", "pydantic_core", "typing_extensions",
                "annotated-types", "typing-inspection", "mnist1d", "pandas", "pyarrow", "scipy", "scikit-learn",
                "PyYAML", "pillow", "tqdm", "filelock", "matplotlib", "pytest", "pytest-timeout", "pytest-xdist",
                "ray", "optuna"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    rec.update(versions=versions)
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    versions.update(torch=torch.__version__, torchvision=torchvision.__version__, cuda_build=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    info: dict[str, Any] = {"cuda_available": cuda, "torch_threads": torch.get_num_threads()}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        versions.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                        gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count(),
                        multiprocessors=props.multi_processor_count)
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        for query, key in (("name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,"
                            "temperature.gpu,compute_mode", "nvidia_smi"),
                           ("pid,used_memory", "other_gpu_processes")):
            flag = "--query-gpu" if key == "nvidia_smi" else "--query-compute-apps"
            try:
                out = subprocess.run(["nvidia-smi", f"{flag}={query}", "--format=csv,noheader"],
                                     capture_output=True, text=True, timeout=15).stdout.strip()
            except (OSError, subprocess.TimeoutExpired) as e:
                out = f"unavailable: {e}"
            info[key] = out
        fields = info["nvidia_smi"].splitlines()[0].split(",") if info["nvidia_smi"] else []
        if len(fields) >= 2 and not info["nvidia_smi"].startswith("unavailable"):
            versions["driver"] = fields[1].strip()
    versions["line"] = (f"python {versions['python']}, torch {versions['torch']}, torchvision {versions['torchvision']}, "
                        f"CUDA build {versions['cuda_build']}, cuDNN {versions['cudnn']}, "
                        + (f"{versions['gpu']} (sm {versions['capability']}, {versions['gpu_memory_gib']} GiB), "
                           f"driver {versions.get('driver')}" if cuda else "no CUDA device"))
    say(versions["line"])
    rec.update(versions=versions, cuda_available=cuda, info=info)
    imports = {}
    for module in ("drive.config", "drive.experiment", "drive.data.jpeg", "sweeps.cli", "benchmarks.bench_throughput",
                   "benchmarks.bench_masks", "benchmarks.bench_pruning_cost"):
        try:
            importlib.import_module(module)
            imports[module] = "ok"
        except Exception as e:
            imports[module] = f"{type(e).__name__}: {e}"
    rec.update(imports=imports, ray_imported_by_cli="ray" in sys.modules)
    say(f"imports: {imports}")
    checks: list[dict[str, Any]] = []
    device = torch.device("cuda" if cuda else "cpu")
    n = 8192 if cuda else 256
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    ref = a[:256].double() @ b.double()
    err = ((a[:256] @ b).double() - ref).norm() / ref.norm()
    calls = 10 if cuda else 1  # random data, never zeros (METHOD.md); ten products per timing
    seconds = _best_time(lambda: [a @ b for _ in range(calls)], device, 5) / calls
    checks.append({"check": f"bf16 matmul {n}^3", "value": round(2 * n**3 / seconds / 1e12, 1), "unit": "TFLOP/s",
                   "rel_err_vs_fp64": float(err)})
    if cuda:
        x = torch.randn(2**28, device=device)  # 1 GiB
        y = torch.empty_like(x)
        seconds = _best_time(lambda: [y.copy_(x) for _ in range(10)], device, 5) / 10
        checks.append({"check": "device copy 1 GiB", "value": round(2 * x.numel() * 4 / seconds / 1e12, 2),
                       "unit": "TB/s (read + write)"})
        del x, y
    rec.update(checks=checks)
    start = time.perf_counter()
    try:
        if opts.cpu:
            raise _Skip("--cpu: not compiled (inductor's C++ build takes long on a small CPU)")
        fn = torch.compile(lambda t: torch.nn.functional.gelu(t) * 2 + 1)
        t = torch.randn(1024, device=device)
        ok = torch.allclose(fn(t), torch.nn.functional.gelu(t) * 2 + 1, atol=1e-5)
        checks.append({"check": "torch.compile of a tiny function", "value": round(time.perf_counter() - start, 1),
                       "unit": "s", "matches_eager": ok})
    except _Skip as e:
        checks.append({"check": "torch.compile of a tiny function", "value": None, "unit": "s", "error": str(e)})
    except Exception as e:
        checks.append({"check": "torch.compile of a tiny function", "value": None, "unit": "s",
                       "error": f"{type(e).__name__}: {e}"[:300]})
    rec.update(checks=checks)
    for c in checks:
        say(f"{c['check']}: {c['value']} {c['unit']}" + (f" ({c['error']})" if c.get("error") else ""))
    bad = [m for m, s in imports.items() if s != "ok"]
    rec.update(headline=versions["line"] if not bad else f"{versions['line']}; IMPORT ERRORS: {', '.join(bad)}")
    if bad:
        raise RuntimeError(f"the project does not import: {bad[0]}: {imports[bad[0]]}")


class _Skip(Exception):
    """A check left out on purpose."""


def _best_time(fn: Callable[[], Any], device: Any, n: int) -> float:
    import torch

    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def cuda_test_ids(root: Path = ROOT) -> list[str]:
    """Node ids of the tests that skip without CUDA: a ``skipif`` mentioning ``cuda`` right above
    a test function or class, or a module-level ``pytestmark`` that does."""
    ids = []
    for path in sorted((root / "tests").rglob("test_*.py")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        rel = path.relative_to(root).as_posix()
        if any(line.startswith("pytestmark") and "cuda" in line for line in lines):
            ids.append(rel)
            continue
        for i, line in enumerate(lines):
            if "skipif" in line and "cuda" in " ".join(lines[i:i + 3]):
                for nxt in lines[i + 1:i + 8]:
                    m = re.match(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)", nxt)
                    if m:
                        node = f"{rel}::{m.group(1)}"
                        if node not in ids:
                            ids.append(node)
                        break
    return ids


def run_pytest(args: list[str], rec: Partial, opts: argparse.Namespace, key: str) -> None:
    """pytest with the gpu_check plugin: every test's outcome lands in a JSON Lines file as it
    ends, and tests are skipped once the step's deadline is near (so pytest ends by itself)."""
    import importlib.util

    report = Path(opts.child_out).with_name(f"{key}-tests.jsonl")
    report.unlink(missing_ok=True)
    extra = ["--timeout", "120"] if importlib.util.find_spec("pytest_timeout") else []
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "-rfE",
           "-p", "benchmarks.gpu_check_pytest", *extra, *args]
    deadline = (opts.deadline or time.time() + 3600) - 15
    env = dict(os.environ, GPU_CHECK_DEADLINE=f"{deadline:.1f}", GPU_CHECK_REPORT=str(report))
    rec.update(command=" ".join(cmd[1:]))
    say(f"running: {' '.join(cmd[1:])}")
    code = subprocess.call(cmd, cwd=ROOT, env=env)
    outcomes: dict[str, int] = {}
    failures = []
    if report.exists():
        for line in report.read_text().splitlines():
            entry = json.loads(line)
            outcomes[entry["outcome"]] = outcomes.get(entry["outcome"], 0) + 1
            if entry["outcome"] in ("failed", "error"):
                failures.append({"test": entry["nodeid"], "when": entry["when"], "message": entry["message"]})
    budget_skips = sum(1 for line in (report.read_text().splitlines() if report.exists() else [])
                       if "time budget" in line)
    rec.update(exit_code=code, outcomes=outcomes, skipped_for_time=budget_skips, failures=failures,
               headline=", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or f"pytest exit {code}")
    if code not in (0, 5) or failures:
        rec.update(reason=(f"{len(failures)} test(s) failed or errored (pytest exit {code})" if failures
                           else f"pytest exit {code}, no test failed: see the step's output"))
        raise SystemExit(1)


def step_cuda_tests(opts: argparse.Namespace, rec: Partial) -> None:
    ids = cuda_test_ids()
    if opts.cpu:  # they skip here: add one that runs, so the smoke sees a pass
        ids = ids + ["tests/drive/test_bits.py"]
    rec.update(tests=[{"node": i} for i in ids])
    run_pytest(ids, rec, opts, "cuda_tests")


#: packages some test modules import at their top that a bare GPU machine lacks
OPTIONAL_TEST_IMPORTS = ("ray", "optuna", "moto", "mlflow", "wandb", "tbparse", "tensorboardX", "jsonschema")


def missing_import_files(paths: list[str], root: Path = ROOT) -> dict[str, str]:
    """Test files under ``paths`` whose top-level imports name a package that is not installed
    (they could not even be collected): file -> the package."""
    import importlib.util

    absent = {name for name in OPTIONAL_TEST_IMPORTS if importlib.util.find_spec(name) is None}
    pattern = re.compile(r"^(?:import|from)\s+(\w+)", re.MULTILINE)
    out = {}
    for given in paths:
        base = root / given
        files = [base] if base.is_file() else sorted(base.rglob("*.py")) if base.is_dir() else []
        for path in files:
            names = set(pattern.findall(path.read_text(encoding="utf-8", errors="replace"))) & absent
            if names:
                out[path.relative_to(root).as_posix()] = sorted(names)[0]
    return out


def step_drive_suite(opts: argparse.Namespace, rec: Partial) -> None:
    import importlib.util

    paths = shlex.split(opts.suite)
    ignored = missing_import_files(paths)
    args = [*paths, "--ignore=tests/benchmarks/test_gpu_check_smoke.py",
            *(f"--ignore={f}" for f in ignored)]
    rec.update(ignored=[{"file": f, "missing": m} for f, m in ignored.items()])
    if importlib.util.find_spec("xdist") and not opts.cpu:
        args += ["-n", str(min(8, os.cpu_count() or 1))]
    run_pytest(args, rec, opts, "drive_suite")


def step_throughput(opts: argparse.Namespace, rec: Partial, model: str) -> None:
    from benchmarks import bench_throughput as bt

    z = sizes(opts)
    argv = ["--models", model, "--images", str(z["images"]), "--batch-size", str(z["batch_size"]),
            "--repeat", str(z["repeat"]), "--workers", str(z["workers"]),
            "--peak-seconds", "0.05" if opts.cpu else "0.5", "--device", z["device"]]
    rec.update(argv="python -m benchmarks.bench_throughput " + " ".join(argv))
    result = bt.run(bt.build_parser().parse_args(argv))
    rows = [{k: v for k, v in r.items() if k != "seconds"} for r in result["rows"]]
    r = rows[0]
    rec.update(rows=rows, seconds={r2["model"]: r2["seconds"] for r2 in result["rows"]}, targets=result["targets"],
               headline=(f"{model}: project {r['project_img_s']:,.0f} img/s = {r['ratio']:.2f}x plain, "
                         f"{r['ratio_best']:.2f}x plain_best; 50k epoch {r['project_epoch_50k_s']:.2f} s "
                         f"({r['epoch_50k']}); {r['project_share_of_peak']:.0%} of measured peak"))


#: the project path's variants: name, TrainConfig fields, whether it compiles
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("project", {}),
    ("eager", {"compile": False}),
    ("no_cuda_graphs", {"cuda_graphs": False}),
    ("eager_fp32", {"compile": False, "bf16": False}),
    ("eager_nchw", {"compile": False, "channels_last": False}),
    ("all_off", {"compile": False, "bf16": False, "channels_last": False, "cuda_graphs": False}),
]


def step_ablation(opts: argparse.Namespace, rec: Partial, model: str) -> None:
    """The project's case of bench_throughput built with other TrainConfig fields (the benchmark
    has no flags for them), one variant at a time so that each result is kept as it comes."""
    import functools
    import gc

    import torch

    from benchmarks import bench_throughput as bt
    from benchmarks.common import best, side_by_side
    from drive.config import TrainConfig
    from drive.train import compile_enabled

    z = sizes(opts)
    device = _device(opts)
    repeat = z["ablation_repeat"]
    ns = argparse.Namespace(images=z["images"], batch_size=z["batch_size"], repeat=repeat, workers=z["workers"],
                            lr=0.05, seed=0, warmup_batches=1)
    rec.update(images=z["images"], batch=z["batch_size"], repeat=repeat)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_cifar_") as tmp:
        bt.write_cifar10(Path(tmp), z["images"])
        plan: list[tuple[str, dict[str, Any] | None]] = [VARIANTS[0], ("plain_best", None), *VARIANTS[1:]]
        for name, fields in plan:
            cfg = TrainConfig(**(fields or {}))
            compiles = fields is not None and compile_enabled(cfg, device)
            flags = ({"bf16": cfg.bf16 and device.type == "cuda", "channels_last": cfg.channels_last,
                      "compile": compiles, "cuda_graphs": compiles and cfg.cuda_graphs and device.type == "cuda"}
                     if fields is not None else {"bf16": device.type == "cuda", "channels_last": True,
                                                 "compile": False, "cuda_graphs": False})
            row: dict[str, Any] = {"model": model, "variant": name, **flags}
            same = next((r["variant"] for r in rows if fields is not None and r["variant"] != "plain_best"
                         and all(r[k] == v for k, v in flags.items())), None)
            if same is not None:  # on the CPU: bf16, compile (auto) and CUDA graphs are off anyway
                row.update(status="skipped", reason=f"the same settings as {same} on {device.type}")
                rows.append(row)
                rec.update(rows=rows)
                continue
            say(f"{model} {name}: {flags}")
            try:
                _reset_dynamo_counters()
                if fields is None:
                    case, _ = bt.plain_case(model, Path(tmp), ns, device, tuned=True)
                else:
                    original = bt.TrainConfig
                    bt.TrainConfig = functools.partial(TrainConfig, **fields)  # read by project_case
                    try:
                        case, _ = bt.project_case(model, Path(tmp), ns, device)
                    finally:
                        bt.TrainConfig = original
                start = time.perf_counter()
                if case.warmup is not None:
                    case.warmup()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                warm = time.perf_counter() - start
                times = side_by_side([bt.Case(name, case.run)], repeat, device)[name]
                rate = z["images"] / best(times)
                row.update(status="ran", img_s=rate, epoch_50k_s=CIFAR_TRAIN / rate, warmup_s=warm,
                           seconds=[round(t, 3) for t in times], **_dynamo_counters())
            except Exception as e:
                traceback.print_exc()
                row.update(status="failed", reason=f"{type(e).__name__}: {e}"[:400])
            rows.append(row)
            ref = {r["variant"]: r.get("img_s") for r in rows}
            for r in rows:
                if r.get("img_s"):
                    r["vs_project"] = r["img_s"] / ref["project"] if ref.get("project") else None
                    r["vs_plain_best"] = r["img_s"] / ref["plain_best"] if ref.get("plain_best") else None
            rec.update(rows=rows)
            say(f"  {name}: " + (f"{row['img_s']:,.0f} img/s, warm-up {row['warmup_s']:.1f} s"
                                 if row.get("img_s") else row.get("reason", "")))
            case = None
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
    got = {r["variant"]: r for r in rows if r.get("img_s")}
    parts = [f"{n} {r['img_s']:,.0f}" for n, r in got.items()]
    rec.update(headline=f"{model} img/s: " + ", ".join(parts))
    failed = [r for r in rows if r.get("status") == "failed"]
    if failed:
        rec.update(reason=f"{len(failed)} variant(s) failed: {failed[0]['variant']}: {failed[0]['reason']}")
        raise SystemExit(1)


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


def step_masks(opts: argparse.Namespace, rec: Partial) -> None:
    from benchmarks import bench_masks

    z = sizes(opts)
    models = ["digits_cnn"] if opts.cpu else ["resnet18", "vgg16_bn", "digits_cnn"]
    timing = ["--repeat", "1", "--round-seconds", "0.02"] if opts.cpu else ["--repeat", "10", "--round-seconds", "0.25"]
    for model in models:
        argv = ["--models", model, *timing, "--device", z["device"]]
        result = bench_masks.run(bench_masks.build_parser().parse_args(argv))
        for r in result["rows"]:
            rec.add("rows", {k: v for k, v in r.items() if k != "seconds"})
        for t in result["targets"]:
            rec.add("targets", t)
    rec.update(headline="overhead " + ", ".join(f"{r['model']} {r['overhead_pct']:.1f}%" for r in rec.data["rows"]))


def step_pruning_cost(opts: argparse.Namespace, rec: Partial) -> None:
    from benchmarks import bench_pruning_cost as bpc

    z = sizes(opts)
    if opts.cpu:
        argv = ["--datasets", "digits", "--methods", "drive,magnitude,imp", "--sparsities", "0.5",
                "--digits-epochs", "1", "--device", "cpu"]
    else:
        argv = ["--digits-epochs", "2", "--cifar-epochs", "2", "--sparsities", "0.9,0.98", "--device", z["device"]]
    opts_b = bpc.build_parser().parse_args(argv)
    compile_setting = False if opts.pruning_compile == "off" else "auto"
    original = bpc.base_experiment

    def base_experiment(dataset: str, o: argparse.Namespace) -> dict[str, Any]:
        tree = original(dataset, o)
        tree.setdefault("train", {})["compile"] = compile_setting
        return tree

    bpc.base_experiment = base_experiment
    rec.update(argv="python -m benchmarks.bench_pruning_cost " + " ".join(argv), train_compile=str(compile_setting))
    for dataset in opts_b.datasets:
        opts_b.datasets = [dataset]
        result = bpc.run(opts_b)
        for r in result["rows"]:
            rec.add("rows", r)
        for c in result["scoring_check"]:
            rec.add("scoring_check", c)
        for t in result["targets"]:
            rec.add("targets", t)
    ratios = [f"{r['dataset']} {r['sparsity']:g}: {r['imp_time_ratio']:.0f}x"
              for r in rec.data.get("rows", []) if r["method"] == "drive" and r.get("imp_time_ratio")]
    rec.update(headline="IMP / DRIVE prune time " + ", ".join(ratios))


def step_nvjpeg(opts: argparse.Namespace, rec: Partial) -> None:
    import concurrent.futures

    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    z = sizes(opts)
    n = z["jpeg_images"]
    gen = torch.Generator().manual_seed(0)
    distinct = max(1, min(n, 64))
    datas = []
    start = time.perf_counter()
    for i in range(distinct):  # smooth photos-like images of ImageNet's typical size
        h, w = (375, 500) if i % 2 else (500, 375)
        coarse = torch.rand(1, 3, 12, 16, generator=gen)
        img = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0]
        img = (img + 0.03 * torch.randn(img.shape, generator=gen)).clamp(0, 1).mul(255).round().to(torch.uint8)
        datas.append(encode_jpeg(img, quality=90))
    datas = [datas[i % distinct] for i in range(n)]
    mbytes = sum(d.numel() for d in datas) / 1e6
    pixels = sum(375 * 500 for _ in datas) / 1e6
    rec.update(images=n, distinct=distinct, mb=round(mbytes, 2), megapixels=round(pixels, 1),
               encode_s=round(time.perf_counter() - start, 2))
    say(f"{n} JPEGs ({distinct} distinct, {mbytes:.1f} MB, 500x375 / 375x500, quality 90)")

    def timed(fn: Callable[[], Any], repeat: int = 3, cuda: bool = False) -> float:
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            fn()
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        return best

    def row(name: str, seconds: float, **extra: Any) -> None:
        rec.add("rows", {"decoder": name, "img_s": n / seconds, "mpix_s": pixels / seconds, **extra})
        say(f"  {name}: {n / seconds:,.0f} img/s")

    torch.set_num_threads(1)
    cpu_one = timed(lambda: [decode_jpeg(d, mode=ImageReadMode.RGB) for d in datas], 2)
    row("cpu, 1 thread", cpu_one)
    threads = min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        cpu_pool = timed(lambda: list(pool.map(lambda d: decode_jpeg(d, mode=ImageReadMode.RGB), datas)), 2)
    row(f"cpu, {threads} threads", cpu_pool, threads=threads)
    if not torch.cuda.is_available():
        rec.update(headline=f"CPU {n / cpu_one:,.0f} img/s per thread; no CUDA: nvJPEG not measured",
                   note="no CUDA: GPU decoding not measured")
        return
    reference = [decode_jpeg(d, mode=ImageReadMode.RGB) for d in datas[:distinct]]
    for batch in (1, 32, 128, n):
        if batch > n:
            continue
        seconds = timed(lambda: [decode_jpeg(datas[i:i + batch], mode=ImageReadMode.RGB, device="cuda")
                                 for i in range(0, n, batch)], 3, cuda=True)
        row(f"cuda, batch {batch}", seconds, batch=batch, vs_cpu_thread=cpu_one / seconds,
            vs_cpu_pool=cpu_pool / seconds)
    gpu = decode_jpeg(datas[:distinct], mode=ImageReadMode.RGB, device="cuda")
    diffs = [(g.cpu().int() - r.int()).abs() for g, r in zip(gpu, reference)]
    rec.update(max_abs_diff_vs_cpu=max(int(d.max()) for d in diffs),
               mean_abs_diff_vs_cpu=sum(float(d.float().mean()) for d in diffs) / len(diffs),
               shapes_match=all(g.shape == r.shape for g, r in zip(gpu, reference)))
    fastest = max(r["img_s"] for r in rec.data["rows"] if r["decoder"].startswith("cuda"))
    rec.update(headline=(f"nvJPEG {fastest:,.0f} img/s = {fastest * cpu_one / n:.1f}x one CPU thread, "
                         f"{fastest * cpu_pool / n:.1f}x {threads} threads; max |GPU - CPU| "
                         f"{rec.data['max_abs_diff_vs_cpu']} levels"))


def step_inference(opts: argparse.Namespace, rec: Partial) -> None:
    import importlib

    module = importlib.import_module("benchmarks.bench_inference")
    z = sizes(opts)
    argv = (list(getattr(module, "QUICK", [])) if opts.cpu else []) + ["--device", z["device"]]
    argv += shlex.split(opts.inference_args)
    rec.update(argv="python -m benchmarks.bench_inference " + " ".join(argv))
    run = getattr(module, "main", None) or module.run
    result = run(argv) if getattr(module, "main", None) else run(module.build_parser().parse_args(argv))
    if isinstance(result, dict):
        rec.update(**{k: v for k, v in result.items() if k not in ("headline",)})
    rec.update(headline=f"bench_inference returned {', '.join(result) if isinstance(result, dict) else type(result).__name__}")


def step_imagenet_input(opts: argparse.Namespace, rec: Partial) -> None:
    from benchmarks import bench_imagenet_input as bii

    z = sizes(opts)
    argv = (["--images", "8", "--image-size", "32", "--batch-size", "4", "--workers", "0", "--repeat", "1"]
            if opts.cpu else ["--images", "1024", "--batch-size", "128", "--workers", str(z["workers"]), "--repeat", "2"])
    argv += ["--device", z["device"]]
    rec.update(argv="python -m benchmarks.bench_imagenet_input " + " ".join(argv))
    result = bii.run(bii.build_parser().parse_args(argv))
    rows = [{k: v for k, v in r.items() if not isinstance(v, (list, dict))} for r in result["rows"]]
    rec.update(rows=rows, headline=", ".join(f"{r['mode']} w{r['workers']} {r['img_s']:,.0f}" for r in rows) + " img/s")


def packing_rates(records: list[list[tuple[float, float]]], images: int, skip: int = 1,
                  tolerance: float = 0.05) -> dict[str, Any]:
    """Steady-state images/s of processes that trained at the same time.

    ``records[p]`` lists process p's training epochs in order as ``(end wall time, training
    seconds)``. The first ``skip`` epochs (compilation, CUDA graph capture) are left out; then
    only the epochs inside the window where every process was past those and none had
    finished count, so each rate is measured while all processes shared the device.
    """
    steady = []
    for epochs in records:
        spans = [((epochs[k - 1][0] if k else end - secs), end, secs) for k, (end, secs) in enumerate(epochs)]
        steady.append(spans[skip:])
    if not steady or any(not s for s in steady):
        raise ValueError(f"every process needs more than {skip} training epoch(s)")
    lo = max(s[0][0] for s in steady)
    hi = min(s[-1][1] for s in steady)
    rates, overlapping = [], True
    for spans in steady:
        inside = [e for e in spans if e[0] >= lo - tolerance and e[1] <= hi + tolerance]
        if not inside:
            inside, overlapping = spans, False
        rates.append(images * len(inside) / sum(e[2] for e in inside))
    return {"rates": rates, "aggregate_img_s": sum(rates), "window_s": max(hi - lo, 0.0),
            "all_overlapping": overlapping}


def read_train_epochs(path: Path) -> tuple[list[tuple[float, float]], dict[str, Any] | None]:
    """``(end time, training seconds)`` of each training epoch in a drive-sweep record, and its end line."""
    epochs, end, last = [], None, 0.0
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry.get("event") == "epoch" and entry.get("phase") == "train":
            epochs.append((entry["time"], entry["train_time_s"] - last))
            last = entry["train_time_s"]
        elif entry.get("event") == "end":
            end = entry
    return epochs, end


def step_packing(opts: argparse.Namespace, rec: Partial) -> None:
    """Like Ray's fractional GPUs (``gpu: 0.25``): N processes of ``drive-sweep prune`` training
    at once on the one device, against one alone; the same config in each (seeds differ)."""
    z = sizes(opts)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_packing_"))
    epochs = z["packing_epochs"]
    if opts.cpu:
        tree: dict[str, Any] = {"method": "magnitude", "sparsity": 0.9, "model": z["packing_model"],
                                "dataset": "digits", "device": "cpu", "warmup_epochs": 0,
                                "data": {"root": str(work / "data")},
                                "train": {"epochs": epochs, "eval_every": epochs}}
    else:
        tree = {"method": "magnitude", "sparsity": 0.9, "model": z["packing_model"], "dataset": "synthetic",
                "device": z["device"], "warmup_epochs": 0,
                "data": {"root": str(work / "data"), "image_size": 32, "channels": 3, "num_classes": 10,
                         "train_size": z["packing_images"], "test_size": 256, "augment": True},
                "train": {"epochs": epochs, "batch_size": 128, "lr": 0.1, "eval_every": epochs}}
    config = work / "packing.yaml"
    config.write_text(json.dumps(tree))  # JSON is YAML
    rec.update(config=tree, command="python -m sweeps.cli prune --config packing.yaml --seed I --quiet --out ...")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    if opts.cpu:
        env["OMP_NUM_THREADS"] = "1"
    images = _train_images(tree)
    rec.update(train_images=images)
    single = None
    for count in (1, z["packing_procs"]):
        say(f"{count} process(es) of drive-sweep prune ({tree['model']}, {epochs} epochs) at once")
        start = time.time()
        procs = []
        for i in range(count):
            log = open(work / f"run-{count}-{i}.log", "w")
            procs.append((subprocess.Popen(
                [sys.executable, "-m", "sweeps.cli", "prune", "--config", str(config), "--seed", str(i), "--quiet",
                 "--out", str(work / f"run-{count}-{i}.jsonl")], cwd=work, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL), log))
        codes = []
        for proc, log in procs:
            codes.append(proc.wait())
            log.close()
        wall = time.time() - start
        records, ends = [], []
        for i in range(count):
            text = (work / f"run-{count}-{i}.log").read_text(errors="replace").strip().splitlines()
            for line in text[-6:]:
                say(f"  [{count}:{i}] {line}")
            try:
                ep, end = read_train_epochs(work / f"run-{count}-{i}.jsonl")
            except OSError:
                ep, end = [], None
            records.append(ep)
            ends.append(end)
        if any(codes):
            raise RuntimeError(f"{sum(1 for c in codes if c)} of {count} drive-sweep processes failed "
                               f"(exit codes {codes}); see the lines above")
        rates = packing_rates(records, images)
        row = {"processes": count, "aggregate_img_s": rates["aggregate_img_s"],
               "per_process_img_s": sum(rates["rates"]) / count, "overlap_window_s": rates["window_s"],
               "all_overlapping": rates["all_overlapping"], "wall_s": wall,
               "first_epoch_s": sum(r[0][1] for r in records) / count,
               "test_acc": sum(e.get("test_acc") or 0 for e in ends) / count}
        if single is None:
            single = rates["aggregate_img_s"]
        row["vs_one"] = rates["aggregate_img_s"] / single
        rec.add("rows", row)
        say(f"  {count} at once: {rates['aggregate_img_s']:,.0f} img/s in all "
            f"({row['vs_one']:.2f}x one alone), overlap window {rates['window_s']:.1f} s")
    last = rec.data["rows"][-1]
    rec.update(ratio=last["vs_one"], headline=(f"{last['processes']} processes at once: {last['aggregate_img_s']:,.0f} "
                                               f"img/s = {last['vs_one']:.2f}x one alone ({tree['model']})"))


def _train_images(tree: dict[str, Any]) -> int:
    """The training-set size of the packing config (as the experiment resolves it)."""
    from drive.config import build_config
    from drive.data import load_dataset

    cfg = build_config(tree)
    return int(load_dataset(cfg.dataset, cfg.data).num_train)


CHILD_STEPS: dict[str, Callable[[argparse.Namespace, Partial], None]] = {
    "env": step_env, "cuda_tests": step_cuda_tests,
    "throughput_resnet18": lambda o, r: step_throughput(o, r, "resnet18"),
    "throughput_vgg16_bn": lambda o, r: step_throughput(o, r, "vgg16_bn"),
    "nvjpeg": step_nvjpeg, "masks": step_masks, "inference": step_inference, "packing": step_packing,
    "pruning_cost": step_pruning_cost,
    "ablation_resnet18": lambda o, r: step_ablation(o, r, "resnet18"),
    "ablation_vgg16_bn": lambda o, r: step_ablation(o, r, "vgg16_bn"),
    "imagenet_input": step_imagenet_input, "drive_suite": step_drive_suite,
}
assert set(CHILD_STEPS) == set(STEP_NAMES)


def child(opts: argparse.Namespace) -> int:
    rec = Partial(Path(opts.child_out))
    rec.update()
    try:
        CHILD_STEPS[opts.child](opts, rec)
    except SystemExit as e:
        return int(e.code or 0)
    except BaseException as e:
        traceback.print_exc()
        rec.update(error=f"{type(e).__name__}: {e}"[:500])
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = build_parser().parse_args(argv)
    if opts.child:
        return child(opts)
    return orchestrate(opts, argv)


if __name__ == "__main__":
    sys.exit(main())
