"""Launch and resume sweeps with Ray Tune, locally or on a cluster.

``run_sweep(spec)`` checks everything before a trial starts (the sweep file, every trial's
config, data set and model, devices, resources, the cluster address; :mod:`sweeps.checks`),
then claims the experiment folder atomically (a second launch with the same name is refused)
and runs the trials with Tune's Tuner (resources per trial, concurrency, scheduler, per-point
search, retries from checkpoints via FailureConfig, storage on a local folder, NFS, S3 or GCS).
Nothing is written before the checks pass, and a launch that fails before Tune starts removes
its claim. ``resume_sweep(path)`` continues a stopped sweep with ``Tuner.restore``: finished
trials are never run again, unfinished and errored ones continue from their last checkpoint.
"""

from __future__ import annotations

import copy
import os

# Ray's classic progress table (CLIReporter) shows the sweep axes compactly; the newer output
# prints every finished trial's full result, which is hundreds of lines for a pruning sweep.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
# Each trial's metrics.jsonl is the contract (docs/results.md); Tune's own loggers are not needed.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Reports carry a metric only once it is measured (no placeholder before the first evaluation);
# the search metric is checked before Ray starts (sweeps.spec).
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
# Short trials checkpoint often by design (phase boundaries); Tune's hint about it is noise here.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
import json
import logging
import platform
import subprocess
from pathlib import Path
from typing import Any

import yaml

from pydantic import ValidationError

from drive.config import DataConfig
from sweeps.loggers import make_callbacks
from sweeps.space import expand_trials, longest_first, make_searcher, param_space, trial_dirname
from sweeps.spec import REMOTE_SCHEMES, SweepError, SweepSpec, load_spec, trial_config
from sweeps.storage import claim, ensure_writable, experiment_exists, read_text, remove_claim

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


#: Ray's logger that announces the default token authentication of a new local cluster.
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"


def _quiet_token_default(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


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
    # Ray enables token authentication for a new local cluster (RAY_AUTH_MODE unset) and says
    # so in a WARNING line at every launch: kept, without the line (a refused sweep prints one)
    logging.getLogger(AUTH_LOGGER).addFilter(_quiet_token_default)
    paths = [os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # address="local": a new embedded instance, never another user's (or a dead) local cluster
    ray.init(address="local", dashboard_host="127.0.0.1", logging_level="warning", logging_config=quiet,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})


def selection(spec: SweepSpec) -> dict[str, Any] | None:
    """What ranks this sweep's trials, recorded in every trial's ``start`` line (None: a grid)."""
    if not spec.selects:
        return None
    by = [name for name, on in (("optuna", spec.search.algorithm == "optuna"),
                                ("asha", spec.scheduler.name == "asha")) if on]
    return {"metric": spec.search.metric, "mode": spec.search.resolved_mode, "by": by,
            "on_test": spec.search.metric.startswith("test_")}


def make_trainable(spec: SweepSpec, base: dict[str, Any], meta: dict[str, Any], path: str):
    """The function trainable with its fixed arguments and per-trial resources."""
    from ray import tune

    from sweeps.trainable import run_trial

    bound = tune.with_parameters(run_trial, base=base, checkpoint_every=spec.checkpoint_every,
                                 provenance=meta, experiment_path=path, selection=selection(spec))
    return tune.with_resources(bound, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def longest_trial(base: dict[str, Any], trials: list[dict[str, Any]]) -> int:
    """Training epochs of the longest trial (ASHA's ``max_t`` by default)."""
    from drive.plan import make_plan, total_epochs

    return max(total_epochs(make_plan(trial_config(base, t))) for t in trials)


def _tune_config(spec: SweepSpec, base: dict[str, Any], trials: list[dict[str, Any]]):
    from ray import tune

    from sweeps.records import EpochASHA

    scheduler = None
    if spec.scheduler.name == "asha":
        scheduler = EpochASHA(metric=spec.search.metric, mode=spec.search.resolved_mode,
                              max_t=spec.scheduler.max_t or longest_trial(base, trials),
                              grace_period=spec.scheduler.grace_period,
                              reduction_factor=spec.scheduler.reduction_factor)
    try:
        searcher = make_searcher(spec, trials)
    except ImportError:
        raise SweepError(["search.algorithm: optuna needs the optional extra: pip install 'drive-sweeps[optuna]'"]) from None
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                           num_samples=searcher.total if searcher else 1,
                           max_concurrent_trials=spec.max_concurrent, reuse_actors=spec.reuse_actors,
                           trial_dirname_creator=trial_dirname)


def _run_config(spec: SweepSpec, verbose: int, callbacks: list, stop):
    from ray import tune

    storage = spec.storage if spec.is_remote else str(Path(spec.storage).expanduser().resolve())
    reporter = tune.CLIReporter(
        parameter_columns={f"trial/{k}": k.split(".")[-1] for k in TABLE_AXES},
        metric_columns={"phase": "phase", "epochs_done": "epochs", "density": "density",
                        "val_acc": "val_acc", "test_acc": "test_acc"},
        max_report_frequency=spec.report_every_s)
    # the sweep file's loggers (json always: Tune's ResultGrid reads it; the analysis reads only
    # the records); trial output goes to the terminal and to stdout/stderr files in each trial folder
    loggers = make_callbacks(spec.loggers, spec.name, spec.experiment_path(), spec.is_remote)
    return tune.RunConfig(name=spec.name, storage_path=storage, verbose=verbose, progress_reporter=reporter,
                          callbacks=[*loggers, *callbacks], stop=stop, log_to_file=True,
                          sync_config=tune.SyncConfig(sync_artifacts=True),
                          failure_config=tune.FailureConfig(max_failures=spec.retries),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints))


def _storage_root(spec: SweepSpec) -> str:
    return spec.storage if spec.is_remote else str(Path(spec.storage).expanduser().resolve())


def _prepare(spec: SweepSpec, base: dict[str, Any], address: str | None) -> list[dict[str, Any]]:
    """Every check of :mod:`sweeps.checks`, then Ray (started or attached); returns the trials."""
    from sweeps.checks import check_resources, check_trials, connect

    trials = expand_trials(spec)
    check_trials(spec, base, trials)  # builds each data set here once: prepared before Ray starts
    connect(address)
    check_resources(spec, local=not address)
    return trials


def _fit(tuner, path: str) -> str:
    """Run (or continue) the trials, then close every record the trials could not close."""
    import logging

    from sweeps.records import RecordKeeper, StorageLogFilter, finalize

    RecordKeeper.current = None
    state_log, quiet = logging.getLogger(StorageLogFilter.LOGGER), StorageLogFilter()
    state_log.addFilter(quiet)
    try:
        grid = tuner.fit()
    finally:
        state_log.removeFilter(quiet)
    keeper = RecordKeeper.current
    try:
        finalize(path, grid)
    except OSError as e:  # StorageError included
        if keeper is not None and keeper.storage_error is None:
            keeper.storage_error = str(e)
    if keeper is not None and keeper.storage_error:
        try:
            check_tune_state(path)
            then = f"fix the storage, then `drive-sweep resume {path}`"
        except SweepError:
            then = "Ray Tune's state was cut short: fix the storage and run again under another --name"
        raise SweepError([f"{keeper.storage_error}; the sweep stopped and the results written "
                          f"so far are intact ({then})"])
    return path


def _new_tuner(spec: SweepSpec, base: dict[str, Any], trials: list[dict[str, Any]],
               meta: dict[str, Any], path: str, verbose: int):
    from ray import tune

    from sweeps.records import RecordKeeper, StopOnStorageError

    trials = longest_first(base, trials)  # no long trial left alone at the end
    tune_config = _tune_config(spec, base, trials)
    keeper = RecordKeeper(path, tune_config.scheduler)
    return tune.Tuner(make_trainable(spec, base, meta, path), param_space=param_space(spec, trials),
                      tune_config=tune_config,
                      run_config=_run_config(spec, verbose, [keeper], StopOnStorageError(keeper)))


def run_sweep(spec: SweepSpec, address: str | None = None, verbose: int = 1) -> str:
    """Run a validated sweep; return its experiment folder (``<storage>/<name>``)."""
    path = spec.experiment_path()
    if experiment_exists(path):
        raise SweepError([f"name: {path} already holds a sweep; continue it with "
                          f"`drive-sweep resume {path}` or choose another --name"])
    ensure_writable(_storage_root(spec))
    base = resolved_base(spec)
    trials = _prepare(spec, base, address)
    meta = provenance()
    saved = yaml.safe_dump({"spec": spec.model_dump(mode="json"), "base": base, "provenance": meta},
                           sort_keys=False)
    if not claim(path, saved, SPEC_FILE):
        raise SweepError([f"name: {path} was just claimed by another launch; choose another --name"])
    try:
        tuner = _new_tuner(spec, base, trials, meta, path, verbose)
    except BaseException:
        remove_claim(path, SPEC_FILE)
        raise
    return _fit(tuner, path)


def load_saved_spec(path: str) -> tuple[SweepSpec, dict[str, Any], dict[str, Any]]:
    """The spec, resolved base config and provenance saved by :func:`run_sweep`."""
    where = f"{path.rstrip('/')}/{SPEC_FILE}"
    if not path.startswith(REMOTE_SCHEMES) and not Path(path).is_dir():
        what = "is a file" if Path(path).exists() else "does not exist"
        raise SweepError([f"EXPERIMENT_DIR: {path} {what}; give a sweep's folder, <storage>/<name>"])
    try:
        saved = yaml.safe_load(read_text(where))
        spec = load_spec(tree=saved["spec"])
        return spec, dict(saved["base"]), dict(saved.get("provenance") or {})
    except FileNotFoundError:
        raise SweepError([f"EXPERIMENT_DIR: {path} has no {SPEC_FILE}; is it a drive-sweep experiment folder?"]) from None
    except SweepError as e:
        raise SweepError([f"EXPERIMENT_DIR: {where} is not a valid sweep ({e.problems[0]})"]) from None
    except (yaml.YAMLError, UnicodeDecodeError, TypeError, KeyError, ValueError, ValidationError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SweepError([f"EXPERIMENT_DIR: {where} is corrupt ({type(e).__name__}: {why})"]) from None


def check_tune_state(path: str) -> None:
    """Refuse (one line) to resume from Ray Tune state that was cut short, as happens when the
    storage filled up while Tune saved it: Tune would silently start a different run."""
    if path.startswith(REMOTE_SCHEMES):
        return
    states = sorted(Path(path).glob("experiment_state-*.json"))
    if not states:
        return
    try:
        json.loads(states[-1].read_text())
    except (ValueError, OSError):
        raise SweepError([f"EXPERIMENT_DIR: Ray Tune's state {states[-1]} is cut short (the "
                          "storage filled up or failed while it was saved), so the sweep cannot "
                          "be resumed; its trial records are intact (drive-sweep report reads "
                          "them): run the sweep again under another --name"]) from None


def expected_trials(path: str) -> int:
    """How many trials the sweep at ``path`` runs in all (grid points x their samples)."""
    from sweeps.space import samples_per_point

    spec, _, _ = load_saved_spec(path)
    return sum(samples_per_point(spec, expand_trials(spec)))


def resume_sweep(path: str, address: str | None = None, verbose: int = 1) -> str:
    """Continue a stopped sweep; finished trials are never run again, errored ones are retried.

    A folder whose launch failed before Tune saved its state starts its trials afresh.
    """
    from ray import tune

    if not path.startswith(REMOTE_SCHEMES):
        path = str(Path(path).expanduser().resolve())
    spec, base, meta = load_saved_spec(path)
    check_tune_state(path)
    trials = _prepare(spec, base, address)
    if not tune.Tuner.can_restore(path):
        return _fit(_new_tuner(spec, base, trials, meta, path, verbose), path)
    tuner = tune.Tuner.restore(path, trainable=make_trainable(spec, base, meta, path),
                               resume_unfinished=True, resume_errored=True)
    return _fit(tuner, path)
