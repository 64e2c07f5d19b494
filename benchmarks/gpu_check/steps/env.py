"""The env step: the versions the check runs on, the GPU and driver, that the project imports,
the bf16 matmul and device copy ceilings, and one tiny torch.compile."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata as md
import os
import platform
import subprocess
import sys
import time
from typing import Any

from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.steps.util import say

#: the packages whose versions are recorded (None: not installed)
PACKAGES = ("torch", "torchvision", "triton", "numpy", "pydantic", "pydantic_core", "typing_extensions",
            "annotated-types", "typing-inspection", "mnist1d", "pandas", "pyarrow", "scipy", "scikit-learn",
            "PyYAML", "pillow", "tqdm", "filelock", "matplotlib", "pytest", "pytest-timeout", "pytest-xdist",
            "ray", "optuna")
#: the modules that must import on the machine
MODULES = ("drive.config", "drive.experiment", "drive.run", "drive.data.jpeg", "drive.inference", "sweeps.cli",
           "benchmarks.bench_throughput", "benchmarks.bench_masks", "benchmarks.bench_pruning_cost",
           "benchmarks.bench_inference")
NVIDIA_SMI = (("--query-gpu", "name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,power.draw,"
               "temperature.gpu,compute_mode", "nvidia_smi"),
              ("--query-compute-apps", "pid,used_memory", "other_gpu_processes"))


def package_versions() -> dict[str, Any]:
    """Python, the platform, and the installed version of each of :data:`PACKAGES`."""
    versions: dict[str, Any] = {"python": platform.python_version(), "platform": platform.platform(),
                                "executable": sys.executable, "cores": os.cpu_count()}
    for pkg in PACKAGES:
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    return versions


def nvidia_smi() -> dict[str, str]:
    """``nvidia-smi``'s view of the GPU and of the processes using it, as CSV lines."""
    info = {}
    for flag, query, key in NVIDIA_SMI:
        try:
            out = subprocess.run(["nvidia-smi", f"{flag}={query}", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=15).stdout.strip()
        except (OSError, subprocess.TimeoutExpired) as e:
            out = f"unavailable: {e}"
        info[key] = out
    return info


def gpu_versions(torch: Any, versions: dict[str, Any], info: dict[str, Any]) -> None:
    """Add the GPU, its capability, memory and driver to ``versions``, and nvidia-smi's
    readings and bf16 support to ``info``."""
    props = torch.cuda.get_device_properties(0)
    versions.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), gpus=torch.cuda.device_count(),
                    multiprocessors=props.multi_processor_count)
    info["bf16_supported"] = torch.cuda.is_bf16_supported()
    info.update(nvidia_smi())
    fields = info["nvidia_smi"].splitlines()[0].split(",") if info["nvidia_smi"] else []
    if len(fields) >= 2 and not info["nvidia_smi"].startswith("unavailable"):
        versions["driver"] = fields[1].strip()


def version_line(v: dict[str, Any], cuda: bool) -> str:
    """One line of the versions the check ran on."""
    return (f"python {v['python']}, torch {v['torch']}, torchvision {v['torchvision']}, "
            f"CUDA build {v['cuda_build']}, cuDNN {v['cudnn']}, "
            + (f"{v['gpu']} (sm {v['capability']}, {v['gpu_memory_gib']} GiB), driver {v.get('driver')}"
               if cuda else "no CUDA device"))


def import_check() -> dict[str, str]:
    """Each of :data:`MODULES`: ``ok`` or the error importing it."""
    imports = {}
    for module in MODULES:
        try:
            importlib.import_module(module)
            imports[module] = "ok"
        except Exception as e:
            imports[module] = f"{type(e).__name__}: {e}"
    return imports


def ceilings(torch: Any, device: Any) -> list[dict[str, Any]]:
    """The bf16 matmul rate (random data, never zeros: METHOD.md; ten products per timing on
    CUDA) and, on CUDA, the device-to-device copy rate."""
    from benchmarks.common import fastest

    cuda = device.type == "cuda"
    n = 8192 if cuda else 256
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    ref = a[:256].double() @ b.double()
    err = ((a[:256] @ b).double() - ref).norm() / ref.norm()
    calls = 10 if cuda else 1
    seconds = fastest(lambda: [a @ b for _ in range(calls)], 5, device) / calls
    checks = [{"check": f"bf16 matmul {n}^3", "value": round(2 * n**3 / seconds / 1e12, 1), "unit": "TFLOP/s",
               "rel_err_vs_fp64": float(err)}]
    if cuda:
        x = torch.randn(2**28, device=device)  # 1 GiB
        y = torch.empty_like(x)
        seconds = fastest(lambda: [y.copy_(x) for _ in range(10)], 5, device) / 10
        checks.append({"check": "device copy 1 GiB", "value": round(2 * x.numel() * 4 / seconds / 1e12, 2),
                       "unit": "TB/s (read + write)"})
    return checks


def compile_check(torch: Any, device: Any, cpu_mode: bool) -> dict[str, Any]:
    """How long torch.compile takes for a tiny function, and whether it matches eager."""
    check: dict[str, Any] = {"check": "torch.compile of a tiny function", "value": None, "unit": "s"}
    if cpu_mode:
        return {**check, "error": "--cpu: not compiled (inductor's C++ build takes long on a small CPU)"}
    start = time.perf_counter()
    try:
        fn = torch.compile(lambda t: torch.nn.functional.gelu(t) * 2 + 1)
        t = torch.randn(1024, device=device)
        ok = torch.allclose(fn(t), torch.nn.functional.gelu(t) * 2 + 1, atol=1e-5)
        return {**check, "value": round(time.perf_counter() - start, 1), "matches_eager": ok}
    except Exception as e:
        return {**check, "error": f"{type(e).__name__}: {e}"[:300]}


def step_env(opts: argparse.Namespace, rec: Partial) -> None:
    """Versions, GPU, imports, ceilings, compile; fails when the project does not import."""
    versions = package_versions()
    rec.update(versions=versions)
    import torch
    import torchvision

    cuda = torch.cuda.is_available()
    versions.update(torch=torch.__version__, torchvision=torchvision.__version__, cuda_build=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None)
    info: dict[str, Any] = {"cuda_available": cuda, "torch_threads": torch.get_num_threads()}
    if cuda:
        gpu_versions(torch, versions, info)
    versions["line"] = version_line(versions, cuda)
    say(versions["line"])
    rec.update(versions=versions, cuda_available=cuda, info=info)
    imports = import_check()
    rec.update(imports=imports, ray_imported_by_cli="ray" in sys.modules)
    say(f"imports: {imports}")
    device = torch.device("cuda" if cuda else "cpu")
    checks = ceilings(torch, device)
    rec.update(checks=checks)
    checks.append(compile_check(torch, device, opts.cpu))
    rec.update(checks=checks)
    for c in checks:
        say(f"{c['check']}: {c['value']} {c['unit']}" + (f" ({c['error']})" if c.get("error") else ""))
    bad = [m for m, s in imports.items() if s != "ok"]
    rec.update(headline=versions["line"] if not bad else f"{versions['line']}; IMPORT ERRORS: {', '.join(bad)}")
    if bad:
        raise RuntimeError(f"the project does not import: {bad[0]}: {imports[bad[0]]}")
