"""From a sweep's axes to trials and a Ray Tune search space.

Grid axes are expanded here, not by Tune, because some axes are conditional:

- ``warmup_epochs``, ``prune_iterations``, ``drive.*`` and ``prune.rewind`` vary for DRIVE only;
  ``imp.*`` for IMP only. Other methods get one trial instead of copies that differ in a field
  they ignore.
- ``dense`` ignores ``sparsity``: one trial per combination of the other axes.
- ``imp`` gets one trial per combination of the other axes, pruning to the highest sparsity of
  the axis and reporting every other one as a level (:data:`IMP_LEVELS`).

Without sampled axes the trial list becomes one ``tune.grid_search``. With them, every grid
point gets ``num_samples`` draws of the sampled axes that apply to its method (one trial when
none applies) from its own searcher (:mod:`sweeps.search`).
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from ray import tune

from sweeps.spec import SweepSpec

DRIVE_ONLY = ("warmup_epochs", "prune_iterations", "drive.", "prune.rewind")
IMP_ONLY = ("imp.",)
#: The IMP config field listing the extra sparsities one IMP trial reports as levels.
IMP_LEVELS = "imp.stops"


def applies(key: str, method: str) -> bool:
    """Whether the dotted config field ``key`` matters to ``method``."""
    if key.startswith(DRIVE_ONLY):
        return method == "drive"
    if key.startswith(IMP_ONLY):
        return method == "imp"
    if key == "sparsity":
        return method != "dense"
    return True


def expand_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's grid points after the conditional rules, as dotted overrides per trial."""
    axes = spec.grid_axes
    methods = axes.get("method", [spec.experiment.get("method", "drive")])
    trials: list[dict[str, Any]] = []
    for method in methods:
        relevant = {k: v for k, v in axes.items() if k != "method" and applies(k, method)}
        sparsities = relevant.pop("sparsity", None) if method == "imp" else None
        for combo in itertools.product(*relevant.values()):
            trial = {"method": method, **dict(zip(relevant, combo))}
            if sparsities:
                base_imp = spec.experiment.get("imp")
                field = IMP_LEVELS.split(".", 1)[1]
                base_stops = base_imp.get(field, []) if isinstance(base_imp, dict) else []
                trial["sparsity"] = max(sparsities)
                stops = sorted(set(sparsities) - {max(sparsities)} | set(trial.get(IMP_LEVELS, base_stops)))
                if stops:
                    trial[IMP_LEVELS] = stops
            trials.append(trial)
    unique = {json.dumps(t, sort_keys=True): t for t in trials}
    return list(unique.values())


def sampled_overrides(config: dict[str, Any], method: str) -> dict[str, Any]:
    """The values Tune sampled for this trial, limited to the fields that matter to ``method``."""
    return {k: v for k, v in config.items() if k != "trial" and applies(k, method)}


def trial_overrides(config: dict[str, Any]) -> dict[str, Any]:
    """The dotted config values of a trial from its Tune config: grid point plus samples."""
    point = dict(config["trial"])
    point.update(sampled_overrides(config, point.get("method", "drive")))
    return point


def _distribution(sampler: dict[str, Any]):
    kind, args = next(iter(sampler.items()))
    return {"choice": lambda: tune.choice(args), "uniform": lambda: tune.uniform(*args),
            "loguniform": lambda: tune.loguniform(*args), "randint": lambda: tune.randint(*args),
            "quniform": lambda: tune.quniform(*args)}[kind]()


def sampled_space(spec: SweepSpec, method: str) -> dict[str, Any]:
    """The Tune domains of the sampled axes that matter to ``method``."""
    return {key: _distribution(s) for key, s in spec.sampled_axes.items() if applies(key, method)}


def samples_per_point(spec: SweepSpec, trials: list[dict[str, Any]]) -> list[int]:
    """``num_samples`` for a grid point some sampled axis applies to, else 1."""
    return [spec.search.num_samples if sampled_space(spec, t.get("method", "drive")) else 1
            for t in trials]


def param_space(spec: SweepSpec, trials: list[dict[str, Any]]) -> dict[str, Any]:
    """Tune's ``param_space``: the grid (sampled sweeps get theirs from :func:`make_searcher`)."""
    return {} if spec.sampled_axes else {"trial": tune.grid_search(trials)}


def make_searcher(spec: SweepSpec, trials: list[dict[str, Any]]):
    """The per-grid-point searcher of a sweep with sampled axes (None for a plain grid)."""
    if not spec.sampled_axes:
        return None
    import numpy as np

    from sweeps.search import PerPointSearch, point_searcher

    seed = spec.search.seed

    def make(i: int):
        point_seed = None if seed is None else int(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        space = sampled_space(spec, trials[i].get("method", "drive")) or {}
        return point_searcher(spec.search.algorithm if space else "random", space, point_seed,
                              spec.search.metric, spec.search.resolved_mode)

    return PerPointSearch(trials, samples_per_point(spec, trials), make, spec.search.metric,
                          spec.search.resolved_mode)


def trial_dirname(trial) -> str:
    """Short, readable trial folder names: ``drive_s0.9_seed0_<id>``."""
    point = trial.config.get("trial") or {}
    parts = [str(point.get("method", trial.trainable_name))]
    if "sparsity" in point:
        parts.append(f"s{point['sparsity']}")
    if "seed" in point:
        parts.append(f"seed{point['seed']}")
    return "_".join(parts + [trial.trial_id])
