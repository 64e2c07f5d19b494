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
* inference: ``benchmarks.bench_inference --device cuda`` (dense-masked vs CSR / 2:4
  semi-structured execution); with ``--cpu`` at its ``--smoke`` sizes on the CPU.
* packing: fractional GPU packing as Ray's ``gpu: 0.25`` does it: 1, then 4 ``drive-sweep prune``
  processes training at once on the one GPU; steady-state images/s of all together over one's.
* ablation_resnet18 (and, after pruning_cost, ablation_vgg16_bn): bench_throughput's project
  path with bf16, channels_last, compile and CUDA graphs each turned off (its
  ``--project-set`` flag), against the default and the best plain recipe.
* pruning_cost: ``benchmarks.bench_pruning_cost`` on the GPU (eager, ``--set train.compile=false``:
  see ``--pruning-compile``).
* imagenet_input: ``benchmarks.bench_imagenet_input`` (PIL / CPU / device decoding in the loader).
* drive_suite: the whole ``tests/drive`` suite on the machine's torch, with what time is left.

The modules: :mod:`.cli` (the entry point and its options), :mod:`.plan` (the steps, their
limits and sizes), :mod:`.runner` (the budgeted, time-limited run of each step in its own
process), :mod:`.report` (the incremental JSON, Markdown and log), :mod:`.steps` (each step's
code, run in the child process) and :mod:`.pytest_plugin` (per-test outcomes and the deadline
of the pytest steps). The orchestrating process imports nothing but the standard library; the
steps import torch. It runs on torch >= 2.4 and records the versions it ran on.
"""

from benchmarks.gpu_check.plan import BY_NAME, STATUSES, STEP_NAMES, STEPS, Step

__all__ = ["BY_NAME", "STATUSES", "STEPS", "STEP_NAMES", "Step"]
