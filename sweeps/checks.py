"""Everything a sweep can get wrong, checked in the driver before a trial starts.

Each problem is one line of a :class:`~sweeps.spec.SweepError`: a data set or model that
cannot be built (every distinct one is built once, here), ``device: cuda`` where trials get no
GPU, resources no machine has (Ray would wait for them forever), a cluster address that does
not answer.
"""

from __future__ import annotations

import math
import socket
import sys
from typing import Any

from drive.record import one_line
from sweeps.spec import SweepError, SweepSpec, trial_config

#: Seconds to wait for a cluster address to answer.
ADDRESS_TIMEOUT_S = 10.0


def check_trials(spec: SweepSpec, base: dict[str, Any],
                 trials: list[dict[str, Any]]) -> list[tuple[str, dict]]:
    """Prepare every data set the trials use and build every model once; return the data sets
    (name, data config) for the other nodes of a cluster.

    Raises:
        SweepError: one line per distinct problem.
    """
    from drive.config import ConfigError
    from drive.data import DataError, load_dataset, prepare_dataset
    from drive.masks import check_keeps_a_weight, prunable_layers
    from drive.models import ModelError, build_model

    configs = [trial_config(base, t) for t in trials]
    problems: dict[str, None] = {}
    for cfg in configs:
        if cfg.device.startswith("cuda") and spec.resources.gpu == 0:
            problems[f"experiment.device: {cfg.device} needs resources.gpu > 0 (Ray hides the "
                     "GPUs from trials that reserve none); use auto or cpu"] = None
    datasets: dict[str, tuple[str, dict]] = {}
    shapes: dict[str, Any] = {}
    for cfg in configs:
        key = f"{cfg.dataset}|{cfg.data.model_dump_json()}"
        if key in datasets:
            continue
        datasets[key] = (cfg.dataset, cfg.data.model_dump(mode="json"))
        try:
            prepare_dataset(cfg.dataset, cfg.data)
            shapes[key] = _shape(load_dataset(cfg.dataset, cfg.data))
        except DataError as e:
            problems[str(e)] = None
    built: dict[str, Any] = {}
    for cfg, trial in zip(configs, trials):
        data_key = f"{cfg.dataset}|{cfg.data.model_dump_json()}"
        key = f"{cfg.model}|{cfg.model_args}|{shapes.get(data_key)}"
        if data_key not in shapes:
            continue
        if key not in built:
            num_classes, in_channels, image_size, sample_shape = shapes[data_key]
            try:
                built[key] = build_model(cfg.model, num_classes, in_channels, image_size,
                                         sample_shape=sample_shape, **cfg.model_args)
            except ModelError as e:
                problems[str(e)] = None
                built[key] = None
        if built[key] is not None:
            try:
                total = sum(w.numel() for w in prunable_layers(
                    built[key], cfg.prune.exclude_first, cfg.prune.exclude_last).values())
                check_keeps_a_weight(cfg.sparsity, total, cfg.model)
            except ConfigError as e:  # one line per problem, naming the first trial with it
                where = ", ".join(f"{k}={v}" for k, v in trial.items())
                for p in e.problems:
                    if not any(line.startswith(f"sweep: {p} (") for line in problems):
                        problems[f"sweep: {p} (e.g. trial {where})"] = None
    if problems:
        raise SweepError(list(problems)[:20])
    return list(datasets.values())


def _shape(data: Any) -> tuple[int, int, int, tuple[int, ...]]:
    """What a model factory is built with: as in ``drive.experiment.Experiment``."""
    return (data.num_classes, data.in_channels, data.image_size, tuple(data.sample_shape))


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
    from sweeps.launch import init_ray

    if address:
        check_address(address)
    try:
        init_ray(address)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SweepError([f"--address: cannot connect to Ray at {address or 'local'} ({one_line(e)})"]) from None
