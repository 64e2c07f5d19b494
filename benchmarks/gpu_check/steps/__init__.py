"""The code of each step, run in the step's own process (``--child STEP``).

A step is a function ``(opts, rec)``: ``opts`` the check's options, ``rec`` its
:class:`~benchmarks.gpu_check.report.Partial` result, to which it writes each figure as it is
measured. It ends normally (``ran``; ``rec``'s ``note`` becomes the reason shown), raises
``SystemExit(1)`` after setting ``reason`` (``failed``), or raises (``failed``, with the error).
The modules import only the standard library at their top and torch inside the steps.
"""

from __future__ import annotations

import argparse
import functools
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks.gpu_check.plan import STEP_NAMES
from benchmarks.gpu_check.report import Partial
from benchmarks.gpu_check.steps import benches, data, env, packing, tests, throughput

StepCode = Callable[[argparse.Namespace, Partial], None]

#: step name -> its code, in the order of plan.STEPS
CHILD_STEPS: dict[str, StepCode] = {
    "env": env.step_env,
    "cuda_tests": tests.step_cuda_tests,
    "throughput_resnet18": functools.partial(throughput.step_throughput, model="resnet18"),
    "throughput_vgg16_bn": functools.partial(throughput.step_throughput, model="vgg16_bn"),
    "nvjpeg": data.step_nvjpeg,
    "masks": benches.step_masks,
    "inference": benches.step_inference,
    "packing": packing.step_packing,
    "ablation_resnet18": functools.partial(throughput.step_ablation, model="resnet18"),
    "pruning_cost": benches.step_pruning_cost,
    "ablation_vgg16_bn": functools.partial(throughput.step_ablation, model="vgg16_bn"),
    "imagenet_input": data.step_imagenet_input,
    "drive_suite": tests.step_drive_suite,
}
assert list(CHILD_STEPS) == STEP_NAMES


def run_step(name: str, opts: argparse.Namespace) -> int:
    """Run step ``name`` into ``opts.child_out``; the process's exit status."""
    rec = Partial(Path(opts.child_out))
    rec.update()
    try:
        CHILD_STEPS[name](opts, rec)
    except SystemExit as e:
        return int(e.code or 0)
    except BaseException as e:
        traceback.print_exc()
        rec.update(error=f"{type(e).__name__}: {e}"[:500])
        return 1
    return 0
