"""The machine a benchmark ran on: CPU, cores, load, library versions, GPU, date."""

from __future__ import annotations

import datetime
import os
import platform
from typing import Any

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """A dict describing this machine and software, with the current date and load."""
    cuda = torch.cuda.is_available()
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1_5_15min": load,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "cuda_available": cuda,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
    }


def describe(info: dict[str, Any] | None = None) -> str:
    """Two readable lines for the top of a benchmark's output."""
    i = info or machine_info()
    gpu = i["gpu"] or "no GPU (CUDA not available)"
    return (f"machine: {i['cpu']}, {i['cores']} cores (torch threads {i['torch_threads']}), "
            f"load {i['load_avg_1_5_15min']}, {gpu}\n"
            f"software: Python {i['python']}, torch {i['torch']} (CUDA build {i['cuda_build']}), "
            f"{i['platform']}; date {i['date']}")


def print_machine() -> dict[str, Any]:
    """Print :func:`describe` and return the info dict."""
    info = machine_info()
    print(describe(info), flush=True)
    return info
