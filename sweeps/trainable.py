"""The Ray Tune function trainable: one ``drive`` experiment per trial.

It reports every epoch with ``tune.report`` (``event: epoch``), every finished IMP level
(``event: level``) and the end (``event: final``, the experiment's metrics). A checkpoint (the
experiment's resumable state) goes with the report every ``checkpoint_every`` epochs and at
every phase boundary (end of warm-up, of pruning, of each IMP round); a retried or restored trial
continues from ``tune.get_checkpoint()`` in whatever phase it was.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ray import tune

from drive.data import prepare_dataset
from drive.experiment import Experiment, Progress
from drive.state import load_state, save_state
from sweeps.space import sampled_overrides
from sweeps.spec import trial_config

STATE_FILE = "state.pt"

#: Fault injection for tests and chaos drills: ``"<epochs_done>:<marker file>"`` makes the
#: trial's worker process die (``os._exit``) once, right after that epoch's report, as if its
#: node had been lost; the marker file records that it happened.
FAIL_ONCE_ENV = "DRIVE_SWEEP_FAIL_ONCE"


def _maybe_fail(epochs_done: int) -> None:
    spec = os.environ.get(FAIL_ONCE_ENV)
    if not spec:
        return
    at, _, marker = spec.partition(":")
    if epochs_done == int(at) and not Path(marker).exists():
        Path(marker).write_text(f"failed once after epoch {epochs_done}\n")
        os._exit(1)


def overrides_for(config: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, Any]:
    """The dotted config values of this trial: its grid point plus the sampled values."""
    point = dict(config["trial"]) if "trial" in config else dict(trials[config["trial_index"]])
    point.update(sampled_overrides(config, point.get("method", "drive")))
    return point


def _wants_checkpoint(p: Progress, method: str, every: int) -> bool:
    """Every ``every`` epochs, and at the end of warm-up, of pruning and of each IMP round.

    Rewinding and IMP's magnitude pruning take no time to redo, so they get no checkpoint.
    """
    phase = p.metrics["phase"]
    if phase == "rewind" or (phase == "prune" and method == "imp"):
        return False
    return p.boundary or (phase != "prune" and p.metrics["epochs_done"] % every == 0)


def _lean(metrics: dict[str, Any]) -> dict[str, Any]:
    """The final metrics for result.json: no history, and the experiment config renamed, since
    Tune writes the trial's own ``config`` (its sweep point) into every line."""
    out = {k: v for k, v in metrics.items() if k not in ("history", "config")}
    out["experiment_config"] = metrics["config"]
    return out


def run_trial(config: dict[str, Any], *, base: dict[str, Any], trials: list[dict[str, Any]],
              checkpoint_every: int, provenance: dict[str, Any]) -> None:
    """Tune entry point (bind the keyword arguments with ``tune.with_parameters``)."""
    cfg = trial_config(base, overrides_for(config, trials))
    prepare_dataset(cfg.dataset, cfg.data)  # once per node, under a lock: nodes may join late
    state = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_state(Path(folder) / STATE_FILE)
    exp = Experiment(cfg, state)
    last_test_acc = 0.0
    identity = {"method": cfg.method, "model": cfg.model, "dataset": cfg.dataset, "seed": cfg.seed}

    def on_progress(p: Progress) -> None:
        nonlocal last_test_acc
        m = p.metrics
        last_test_acc = m.get("test_acc", last_test_acc)
        # every report carries the search metric, so schedulers such as ASHA always find it
        report = {"event": "epoch", **m, "test_acc": last_test_acc, "evaluated": "test_acc" in m}
        if p.level is not None:
            report.update({"event": "level", **identity, **p.level, "epochs": cfg.train.epochs,
                           "experiment_config": cfg.model_dump(mode="json")})
        if _wants_checkpoint(p, cfg.method, checkpoint_every):
            with tempfile.TemporaryDirectory() as folder:
                save_state(p.state(), Path(folder) / STATE_FILE)
                tune.report(report, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(report)
        _maybe_fail(m["epochs_done"])

    metrics = exp.run(on_progress)
    tune.report({"event": "final", **_lean(metrics), "provenance": provenance})
