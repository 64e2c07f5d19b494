"""Launch and resume sweeps with Ray Tune, locally or on a cluster.

``run_sweep(sweep)`` checks everything before a trial starts (the sweep file, every trial's
config, data set and model, devices, resources, the cluster address; :mod:`sweeps.checks`,
:mod:`sweeps.runtime`),
then claims the experiment folder atomically (a second launch with the same name is refused)
and runs the trials with Tune's Tuner (resources per trial, concurrency, scheduler, per-point
search, retries from checkpoints via FailureConfig, storage on a local folder, NFS, S3 or GCS).
Nothing is written before the checks pass, and a launch that fails before Tune starts removes
its claim. ``resume_sweep(path)`` continues a stopped sweep with ``Tuner.restore``: finished
trials are never run again, unfinished and errored ones continue from their last checkpoint.

Under the CLI's :class:`~sweeps.signals.SignalGuard`, SIGINT and SIGTERM stop Tune gracefully
and every record is ended before the call returns (:func:`_fit`).
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sweeps import signals
from sweeps.checks import check_search, check_trials, warn_without_axes
from sweeps.loggers import make_callbacks
from sweeps.runtime import (
    TABLE_AXES,
    check_resources,
    configure_tune,
    connect,
    make_searcher,
    param_space,
    shutdown_ray,
    trial_dirname,
)
from sweeps.spec import REMOTE_SCHEMES, SweepError, SweepSpec, load_spec
from sweeps.storage import check_free, claim, ensure_writable, read_text, remove_claim
from sweeps.trials import Sweep, count_trials, resolve

SPEC_FILE = "sweep.yaml"


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


def selection(spec: SweepSpec) -> dict[str, Any] | None:
    """What ranks this sweep's trials, recorded in every trial's ``start`` line (None: a grid)."""
    if not spec.selects:
        return None
    by = [name for name, on in (("optuna", spec.search.algorithm == "optuna"),
                                ("asha", spec.scheduler.name == "asha")) if on]
    return {"metric": spec.search.metric, "mode": spec.search.resolved_mode, "by": by,
            "on_test": spec.search.metric.startswith("test_")}


def make_trainable(sweep: Sweep, meta: dict[str, Any], path: str):
    """The function trainable with its fixed arguments and per-trial resources."""
    from ray import tune

    from sweeps.trainable import run_trial

    spec = sweep.spec
    bound = tune.with_parameters(run_trial, base=sweep.base, methods=list(sweep.methods),
                                 checkpoint_every=spec.checkpoint_every, provenance=meta,
                                 experiment_path=path, selection=selection(spec))
    return tune.with_resources(bound, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})


def _tune_config(sweep: Sweep, points: list[dict[str, Any]]):
    from ray import tune

    from sweeps.records import EpochASHA

    spec, scheduler = sweep.spec, None
    if spec.scheduler.name == "asha":
        scheduler = EpochASHA(metric=spec.search.metric, mode=spec.search.resolved_mode,
                              max_t=spec.scheduler.max_t or sweep.longest_epochs(),
                              grace_period=spec.scheduler.grace_period,
                              reduction_factor=spec.scheduler.reduction_factor)
    try:
        searcher = make_searcher(sweep, points)
    except ImportError:
        raise SweepError(["search.algorithm: optuna needs the optional extra: pip install 'drive-sweeps[optuna]'"]) from None
    return tune.TuneConfig(search_alg=searcher, scheduler=scheduler,
                           num_samples=searcher.total if searcher else 1,
                           max_concurrent_trials=spec.max_concurrent, reuse_actors=spec.reuse_actors,
                           trial_dirname_creator=trial_dirname)


def _run_config(spec: SweepSpec, verbose: int, callbacks: list, stop):
    from ray import tune

    reporter = tune.CLIReporter(
        parameter_columns={f"trial/{k}": k.split(".")[-1] for k in TABLE_AXES},
        metric_columns={"phase": "phase", "epochs_done": "epochs", "density": "density",
                        "val_acc": "val_acc", "test_acc": "test_acc"},
        max_report_frequency=spec.report_every_s)
    # the sweep file's loggers (json always: Tune's ResultGrid reads it; the analysis reads only
    # the records); trial output goes to the terminal and to stdout/stderr files in each trial folder
    loggers = make_callbacks(spec.loggers, spec.name, spec.experiment_path(), spec.is_remote)
    return tune.RunConfig(name=spec.name, storage_path=_storage_root(spec), verbose=verbose,
                          progress_reporter=reporter, callbacks=[*loggers, *callbacks], stop=stop,
                          log_to_file=True, sync_config=tune.SyncConfig(sync_artifacts=True),
                          failure_config=tune.FailureConfig(max_failures=spec.retries),
                          checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.keep_checkpoints))


def _storage_root(spec: SweepSpec) -> str:
    return spec.storage if spec.is_remote else str(Path(spec.storage).expanduser().resolve())


def _prepare(sweep: Sweep, address: str | None) -> None:
    """Every data set and model check (:mod:`sweeps.checks`), then Ray (started or attached)."""
    check_trials(sweep)  # builds each data set here once: prepared before Ray starts
    connect(address)
    check_resources(sweep.spec, local=not address)


def _fit(tuner, path: str) -> str:
    """Run (or continue) the trials, then close every record the trials could not close.

    A signal stops Tune gracefully (:func:`sweeps.signals.tune_running`): Tune saves its state
    and stops the trials, then this returns with every record ended. A second signal cuts that
    short: Ray is shut down (the trials end with it), the records are ended, and this returns
    too (:func:`sweeps.signals.received` says why).
    """
    import logging

    from sweeps.records import GoneCheckpointFilter, RecordKeeper, StorageLogFilter, finalize

    filters = [(logging.getLogger(StorageLogFilter.LOGGER), StorageLogFilter(path)),
               (logging.getLogger(GoneCheckpointFilter.LOGGER), GoneCheckpointFilter())]
    for logger, f in filters:
        logger.addFilter(f)
    grid = None
    try:
        with signals.quiet_tune(), signals.tune_running():
            grid = tuner.fit()
    except KeyboardInterrupt:
        shutdown_ray()
        if signals.received() is None:  # not a signal the guard handled: not ours to swallow
            raise
    finally:
        for logger, f in filters:
            logger.removeFilter(f)
        keeper = RecordKeeper.of(path)
        try:
            finalize(path, grid)
        except OSError as e:  # StorageError included
            keeper.storage_error = keeper.storage_error or str(e)
        finally:
            RecordKeeper.release(path)
    if keeper.storage_error:
        try:
            check_tune_state(path)
            then = f"fix the storage, then `drive-sweep resume {path}`"
        except SweepError:
            then = "Ray Tune's state was cut short: fix the storage and run again under another --name"
        raise SweepError([f"{keeper.storage_error}; the sweep stopped and the results written "
                          f"so far are intact ({then})"])
    return path


def _new_tuner(sweep: Sweep, meta: dict[str, Any], path: str, verbose: int):
    from ray import tune

    from sweeps.records import RecordKeeper, StopOnStorageError

    configure_tune()
    points = [t.point for t in sweep.longest_first()]  # no long trial left alone at the end
    tune_config = _tune_config(sweep, points)
    keeper = RecordKeeper(path, tune_config.scheduler)
    return tune.Tuner(make_trainable(sweep, meta, path), param_space=param_space(sweep, points),
                      tune_config=tune_config,
                      run_config=_run_config(sweep.spec, verbose, [keeper], StopOnStorageError(path)))


def run_sweep(sweep: Sweep | SweepSpec, address: str | None = None, verbose: int = 1) -> str:
    """Run a sweep (a :class:`~sweeps.trials.Sweep` from :func:`sweeps.checks.load_sweep`, or a
    spec, resolved and checked here); return its experiment folder (``<storage>/<name>``)."""
    if isinstance(sweep, SweepSpec):
        sweep = resolve(sweep)
        check_search(sweep)
    spec = sweep.spec
    path = spec.experiment_path()
    check_free(path)
    ensure_writable(_storage_root(spec))
    _prepare(sweep, address)
    warn_without_axes(sweep)
    meta = provenance()
    saved = yaml.safe_dump({"spec": spec.model_dump(mode="json"), "base": sweep.base, "provenance": meta},
                           sort_keys=False)
    if not claim(path, saved, SPEC_FILE):
        raise SweepError([f"name: {path} was just claimed by another launch; choose another --name"])
    try:
        tuner = _new_tuner(sweep, meta, path, verbose)
    except BaseException:
        remove_claim(path, SPEC_FILE)
        raise
    return _fit(tuner, path)


def load_saved_sweep(path: str) -> tuple[Sweep, dict[str, Any]]:
    """The sweep (with the resolved base config it ran with) and provenance saved by
    :func:`run_sweep`."""
    where = f"{path.rstrip('/')}/{SPEC_FILE}"
    if not path.startswith(REMOTE_SCHEMES) and not Path(path).is_dir():
        what = "is a file" if Path(path).exists() else "does not exist"
        raise SweepError([f"EXPERIMENT_DIR: {path} {what}; give a sweep's folder, <storage>/<name>"])
    try:
        saved = yaml.safe_load(read_text(where))
        sweep = resolve(load_spec(tree=saved["spec"]), base=dict(saved["base"]))
        return sweep, dict(saved.get("provenance") or {})
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


def saved_spec(path: str) -> SweepSpec:
    """The spec saved with the sweep at ``path`` (read, not resolved again)."""
    try:
        return load_spec(tree=yaml.safe_load(read_text(f"{path.rstrip('/')}/{SPEC_FILE}"))["spec"])
    except (OSError, yaml.YAMLError, TypeError, KeyError, ValueError) as e:
        raise SweepError([f"EXPERIMENT_DIR: {path}/{SPEC_FILE} cannot be read ({type(e).__name__})"]) from None


def expected_trials(path: str) -> int:
    """How many trials the sweep at ``path`` runs in all (grid points x their samples)."""
    return count_trials(saved_spec(path))


def resume_sweep(path: str, address: str | None = None, verbose: int = 1) -> str:
    """Continue a stopped sweep; finished trials are never run again, errored ones are retried.

    A folder whose launch failed before Tune saved its state starts its trials afresh.
    """
    from ray import tune

    if not path.startswith(REMOTE_SCHEMES):
        path = str(Path(path).expanduser().resolve())
    sweep, meta = load_saved_sweep(path)
    check_tune_state(path)
    _prepare(sweep, address)
    if not tune.Tuner.can_restore(path):
        return _fit(_new_tuner(sweep, meta, path, verbose), path)
    configure_tune()
    with signals.quiet_tune():  # its notes on trials that never reported: the records tell
        tuner = tune.Tuner.restore(path, trainable=make_trainable(sweep, meta, path),
                                   resume_unfinished=True, resume_errored=True)
    return _fit(tuner, path)
