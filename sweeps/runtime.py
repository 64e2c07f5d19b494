"""The Ray side of a sweep: starting or attaching to Ray, the checks that need it, and what Tune
is given (search space, searchers, trial folder names, the trainable).

Embedded local Ray is started with its processes marked for this driver's watcher
(:mod:`sweeps.reaper`), so none outlives the driver, and the driver's signal handlers
(:mod:`sweeps.signals`), which Ray's start replaces, are installed again.

Ray's own settings for this tool (its progress table, no auto loggers) are set when Ray is
started here, not when this module is imported, and only where the user has not set them.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from typing import Any

from drive.errors import one_line
from sweeps import reaper, signals
from sweeps.spec import SweepError, SweepSpec
from sweeps.trials import Sweep

#: Seconds to wait for a cluster address to answer.
ADDRESS_TIMEOUT_S = 10.0
#: Ray's logger that announces the default token authentication of a new local cluster.
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
#: Sweep axes shown in the progress table.
TABLE_AXES = ("method", "sparsity", "seed", "warmup_epochs", "prune_iterations")

#: Ray Tune settings of this tool (each kept when the user set it):
TUNE_ENVIRONMENT = {
    # the classic progress table (CLIReporter) shows the sweep axes compactly; the newer output
    # prints every finished trial's full result, hundreds of lines for a pruning sweep
    "RAY_AIR_NEW_OUTPUT": "0",
    # each trial's metrics.jsonl is the contract (docs/results.md); Tune's own loggers are not needed
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # reports carry a metric only once it is measured (no placeholder before the first
    # evaluation); the search metric is checked before Ray starts (sweeps.checks)
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # short trials checkpoint often by design (phase boundaries); Tune's hint about it is noise
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def shutdown_ray() -> None:
    """Shut Ray down (embedded: its processes end; attached: the driver detaches). Its shutdown
    resets SIGTERM's handler behind Python's back: the guard's comes back after it (a SIGTERM
    that a thread other than the main one takes meanwhile still ends the process)."""
    import ray

    if ray.is_initialized():
        with signals.held():
            ray.shutdown()


def configure_tune() -> None:
    """Apply :data:`TUNE_ENVIRONMENT` (before a Tuner is made)."""
    for key, value in TUNE_ENVIRONMENT.items():
        os.environ.setdefault(key, value)


def _quiet_token_default(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("Token authentication is enabled for this Ray cluster")


def init_ray(address: str | None) -> None:
    """Attach to a cluster (``address``, e.g. ``auto``) or start embedded local Ray."""
    import ray

    configure_tune()
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
    # address="local": a new embedded instance, never another user's (or a dead) local cluster;
    # its processes carry the mark of this driver's watcher, which stops them when it ends
    with reaper.marked(reaper.watch()):
        context = ray.init(address="local", dashboard_host="127.0.0.1", logging_level="warning",
                           logging_config=quiet,
                           runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(paths)}})
    reaper.add_session(context.address_info.get("session_dir"))


def check_address(address: str, timeout: float = ADDRESS_TIMEOUT_S) -> None:
    """``--address HOST:PORT`` (or ``ray://HOST:PORT``) must accept a connection in ``timeout``."""
    if address in ("auto", "local"):
        return
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        host, port = rest, "10001" if address.startswith("ray://") else "6379"
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as e:
        why = "no answer" if isinstance(e, TimeoutError) else e.strerror or type(e).__name__
        raise SweepError([f"--address: cannot reach {host}:{port} within {timeout:g} s ({why})"]) from None


def connect(address: str | None) -> None:
    """Attach to the cluster at ``address`` or start local Ray; a failure is one line."""
    if address:
        check_address(address)
    try:
        with signals.held():  # ray.init installs SIGTERM handlers of its own: ours come back after
            init_ray(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SweepError([f"--address: cannot connect to Ray at {address or 'local'} ({one_line(e)})"]) from None


def check_resources(spec: SweepSpec, local: bool) -> None:
    """A trial's ``resources`` must fit on one node: refused on this machine, a warning on a
    cluster (its autoscaler may still add such a node)."""
    import ray

    need = {"CPU": spec.resources.cpu, "GPU": spec.resources.gpu}
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(all(res.get(k, 0) >= v for k, v in need.items() if v > 0) for res in nodes):
        return
    have = {k: max((res.get(k, 0) for res in nodes), default=0) for k in need}
    field, kind = ("gpu", "GPU") if need["GPU"] > have["GPU"] else ("cpu", "CPU")
    wanted = getattr(spec.resources, field)
    where = "this machine has" if local else "the largest node of the cluster has now"
    line = (f"resources.{field}: a trial needs {wanted:g} {kind}{'s' if wanted != 1 else ''}; "
            f"{where} {math.floor(have[kind])}")
    if local:
        raise SweepError([line + " (Ray would wait forever)"])
    print(f"drive-sweep: warning: {line}; trials wait for the autoscaler to add such a node",
          file=sys.stderr)


# ---- what Tune is given -----------------------------------------------------------------------


def _distribution(sampler: dict[str, Any]):
    from ray import tune

    kind, args = next(iter(sampler.items()))
    return {"choice": lambda: tune.choice(args), "uniform": lambda: tune.uniform(*args),
            "loguniform": lambda: tune.loguniform(*args), "randint": lambda: tune.randint(*args),
            "quniform": lambda: tune.quniform(*args)}[kind]()


def sampled_space(sweep: Sweep, method: str) -> dict[str, Any]:
    """The Tune domains of the sampled axes that matter to ``method``."""
    return {key: _distribution(sweep.spec.sampled_axes[key]) for key in sweep.sampled_keys(method)}


def param_space(sweep: Sweep, points: list[dict[str, Any]]) -> dict[str, Any]:
    """Tune's ``param_space``: the grid (sampled sweeps get theirs from :func:`make_searcher`)."""
    from ray import tune

    return {} if sweep.spec.sampled_axes else {"trial": tune.grid_search(points)}


def make_searcher(sweep: Sweep, points: list[dict[str, Any]]):
    """The per-grid-point searcher of a sweep with sampled axes (None for a plain grid)."""
    spec = sweep.spec
    if not spec.sampled_axes:
        return None
    import numpy as np

    from sweeps.search import PerPointSearch, point_searcher

    seed = spec.search.seed
    samples = [spec.search.num_samples if sweep.sampled_keys(p.get("method", "drive")) else 1
               for p in points]

    def make(i: int):
        point_seed = None if seed is None else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        space = sampled_space(sweep, points[i].get("method", "drive"))
        return point_searcher(spec.search.algorithm if space else "random", space, point_seed,
                              spec.search.metric, spec.search.resolved_mode)

    return PerPointSearch(points, samples, make, spec.search.metric, spec.search.resolved_mode)


def trial_dirname(trial) -> str:
    """Short, readable trial folder names: ``drive_s0.9_seed0_<id>``."""
    point = trial.config.get("trial") or {}
    parts = [str(point.get("method", trial.trainable_name))]
    if "sparsity" in point:
        parts.append(f"s{point['sparsity']}")
    if "seed" in point:
        parts.append(f"seed{point['seed']}")
    return "_".join(parts + [trial.trial_id])
