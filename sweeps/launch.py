"""Launch and resume sweeps with Ray Tune, locally or on a cluster.

``run_sweep(spec)`` validates everything and prepares the data sets before Ray starts, runs the
trials with Tune's Tuner (resources per trial, concurrency, scheduler, retries from checkpoints
via FailureConfig, storage on a local folder, NFS, S3 or GCS), then writes ``results.csv`` and
``results.parquet`` into the experiment folder and prints a summary. ``resume_sweep(path)``
continues a stopped sweep with ``Tuner.restore``: finished trials are kept, unfinished and
errored ones continue from their last checkpoint.
"""

from __future__ import annotations

import copy
import os

# Ray's classic progress table (CLIReporter) shows the sweep axes compactly; the newer output
# prints every finished trial's full result, which is hundreds of lines for a pruning sweep.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# result.json is the contract (docs/results.md); the other loggers are the sweep file's
# `loggers` (sweeps/loggers.py), so Tune adds none of its own.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Short trials checkpoint often by design (phase boundaries); Tune's hint about it is noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
import platform
import subprocess
from pathlib import Path
from typing import Any

import yaml

from drive.config import DataConfig
from drive.data import prepare_dataset
from sweeps.loggers import make_callbacks
from sweeps.space import expand_trials, param_space, trial_dirname
from sweeps.spec import SweepError, SweepSpec, load_spec, trial_config
from sweeps.storage import ensure_writable, experiment_exists, read_text, write_text

SPEC_FILE = "sweep.yaml"
#: Sweep axes shown in the progress table.
TABLE_AXES = ("method", "sparsity", "seed", "warmup_epochs", "prune_iterations")


def provenance() -> dict[str, Any]:
    """Package versions and the git commit of this code, recorded with every trial."""
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for pkg in ("drive-sweeps", "torch", "torchvision", "ray"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    repo = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True,
                                    text=True, timeout=10).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    return {"versions": versions, "git_commit": commit, "git_dirty": dirty}


def resolved_base(spec: SweepSpec) -> dict[str, Any]:
    """The base experiment config with a relative data root made absolute.

    Tune runs each trial inside its own folder, so ``./data`` must be pinned to the launch
    directory (``~`` and ``$VARIABLE`` are kept: every node expands them itself).
    """
    base = copy.deepcopy(spec.experiment)
    root = base.setdefault("data", {}).get("root", DataConfig().root)
    if not root.startswith(("~", "$")) and not Path(root).is_absolute():
        base["data"]["root"] = str(Path(root).resolve())
    return base


def prepare_data(base: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """Download/verify every data set the trials use, here, before Ray starts (bad data fails
    fast); each trial prepares its own node's copy again, once per node (``prepare_dataset``)."""
    needed = {}
    for trial in trials:
        cfg = trial_config(base, trial)
        needed[(cfg.dataset, cfg.data.model_dump_json())] = (cfg.dataset, cfg.data.model_dump(mode="json"))
    for name, data in needed.values():
        prepare_dataset(name, DataConfig(**data))


def init_ray(address: str | None) -> None:
    """Attach to a cluster (``address``, e.g. ``auto``) or start embedded local Ray."""
    import ray

    if ray.is_initialized():
        return
    # trials' own output reaches the terminal; Ray's info lines in them (one per checkpoint) do not
    quiet = ray.LoggingConfig(log_level="WARNING")
    if address:
        ray.init(address=address, logging_config=quiet)
        return
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    ray.init(dashboard_host="127.0.0.1", logging_level="warning", logging_config=quiet,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})


def make_trainable(spec: SweepSpec, base: dict[str, Any], trials: list[dict[str, Any]],
                   meta: dict[str, Any]):
    """The function trainable with its fixed arguments and per-trial resources."""
    from ray import tune

    from sweeps.trainable import run_trial

    bound = tune.with_parameters(run_trial, base=base, trials=trials,
                                 checkpoint_every=spec.checkpoint_every, provenance=meta)
    return tune.with_resources(bound, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def _tune_config(spec: SweepSpec):
    from ray import tune

    scheduler = searcher = None
    if spec.scheduler.name == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(metric=spec.search.metric, mode=spec.search.mode,
                                  max_t=spec.scheduler.max_t, grace_period=spec.scheduler.grace_period,
                                  reduction_factor=spec.scheduler.reduction_factor)
    if spec.search.algorithm == "optuna":
        try:
            from ray.tune.search.optuna import OptunaSearch
        except ImportError:
            raise SweepError(["search.algorithm: optuna needs the optional extra: pip install 'drive-sweeps[optuna]'"])
        searcher = OptunaSearch(metric=spec.search.metric, mode=spec.search.mode, seed=spec.search.seed)
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=spec.search.num_samples,
                           max_concurrent_trials=spec.max_concurrent, reuse_actors=spec.reuse_actors,
                           trial_dirname_creator=trial_dirname)


def _run_config(spec: SweepSpec, verbose: int):
    from ray import tune

    storage = spec.storage if spec.is_remote else str(Path(spec.storage).expanduser().resolve())
    reporter = tune.CLIReporter(
        parameter_columns={f"trial/{k}": k.split(".")[-1] for k in TABLE_AXES},
        metric_columns={"phase": "phase", "epochs_done": "epochs", "density": "density",
                        "test_acc": "test_acc"},
        max_report_frequency=spec.report_every_s)
    # trial output goes to the terminal and to stdout/stderr files in each trial folder
    return tune.RunConfig(name=spec.name, storage_path=storage, verbose=verbose, progress_reporter=reporter,
                          callbacks=make_callbacks(spec.loggers, spec.name, spec.experiment_path(), spec.is_remote),
                          log_to_file=True, sync_config=tune.SyncConfig(sync_artifacts=True),
                          failure_config=tune.FailureConfig(max_failures=spec.retries),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints))


def run_sweep(spec: SweepSpec, address: str | None = None, verbose: int = 1) -> str:
    """Run a validated sweep; return its experiment folder (``<storage>/<name>``)."""
    from ray import tune

    path = spec.experiment_path()
    if experiment_exists(path):
        raise SweepError([f"name: {path} already holds a sweep; continue it with "
                          f"`drive-sweep resume {path}` or choose another --name"])
    ensure_writable(path)
    trials = expand_trials(spec)
    base = resolved_base(spec)
    prepare_data(base, trials)
    meta = provenance()
    write_text(f"{path}/{SPEC_FILE}", yaml.safe_dump(
        {"spec": spec.model_dump(mode="json"), "base": base, "provenance": meta}, sort_keys=False))
    init_ray(address)
    tuner = tune.Tuner(make_trainable(spec, base, trials, meta), param_space=param_space(spec, trials),
                       tune_config=_tune_config(spec), run_config=_run_config(spec, verbose))
    tuner.fit()
    return path


def load_saved_spec(path: str) -> tuple[SweepSpec, dict[str, Any], dict[str, Any]]:
    """The spec, resolved base config and provenance saved by :func:`run_sweep`."""
    try:
        saved = yaml.safe_load(read_text(f"{path.rstrip('/')}/{SPEC_FILE}"))
    except FileNotFoundError:
        raise SweepError([f"EXPERIMENT_DIR: {path} has no {SPEC_FILE}; is it a drive-sweep experiment folder?"]) from None
    spec = load_spec(tree=saved["spec"])
    return spec, saved["base"], saved["provenance"]


def resume_sweep(path: str, address: str | None = None, verbose: int = 1) -> str:
    """Continue a stopped sweep; finished trials are not run again, errored ones are retried."""
    from ray import tune

    if not path.startswith(("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "file://")):
        path = str(Path(path).expanduser().resolve())
    spec, base, meta = load_saved_spec(path)
    if not tune.Tuner.can_restore(path):
        raise SweepError([f"EXPERIMENT_DIR: {path} has no Ray Tune experiment state to resume"])
    trials = expand_trials(spec)
    prepare_data(base, trials)
    init_ray(address)
    tuner = tune.Tuner.restore(path, trainable=make_trainable(spec, base, trials, meta),
                               resume_unfinished=True, resume_errored=True)
    tuner.fit()
    return path
