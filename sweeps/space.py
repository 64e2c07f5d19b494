"""From a sweep's axes to trials and a Ray Tune search space.

Grid axes are expanded here, not by Tune, because some axes are conditional:

- a field that a method owns (its registry entry's ``axes``: ``warmup_epochs``,
  ``prune_iterations``, ``drive.*`` and ``prune.rewind`` for DRIVE, ``imp.*`` for IMP) varies
  for that method only. Other methods get one trial instead of copies that differ in a field
  they ignore.
- ``dense`` ignores ``sparsity``: one trial per combination of the other axes.
- ``imp`` gets one trial per combination of the other axes: its headline is the highest sparsity
  of the axis and every other one is a branch off its trunk (``imp.branches``), each reported
  with exactly the accuracy and cost of a standalone IMP run to it.

Without sampled axes the trial list becomes one ``tune.grid_search``. With them, every grid
point gets ``num_samples`` draws of the sampled axes that apply to its method (one trial when
none applies) from its own searcher (:mod:`sweeps.search`).

Trials start longest first (:func:`longest_first`, by :func:`drive.plan.expected_cost`: IMP,
then DRIVE and the other methods that train longer or score more), so that no long trial is left
running alone at the end of a sweep while the other slots idle: the wall time approaches the
total work divided by the trials that run at once.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from ray import tune

from drive.methods import METHODS, applies
from sweeps.spec import SweepSpec


def _is_imp(method: str) -> bool:
    try:
        return METHODS.get(method).plan == "imp"
    except LookupError:  # an unknown method: validation reports it
        return False


def expand_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's grid points after the conditional rules, as dotted overrides per trial."""
    axes = spec.grid_axes
    methods = axes.get("method", [spec.experiment.get("method", "drive")])
    trials: list[dict[str, Any]] = []
    for method in methods:
        relevant = {k: v for k, v in axes.items() if k != "method" and applies(k, method)}
        sparsities = relevant.pop("sparsity", None) if _is_imp(method) else None
        for combo in itertools.product(*relevant.values()):
            trial = {"method": method, **dict(zip(relevant, combo))}
            if sparsities:
                base_imp = spec.experiment.get("imp")
                base_branches = base_imp.get("branches", []) if isinstance(base_imp, dict) else []
                trial["sparsity"] = max(sparsities)
                # 0 is no branch: it is the trunk's level 0, the dense training every IMP run has
                extra = (set(sparsities) | set(trial.get("imp.branches", base_branches))) - {0}
                if extra - {max(sparsities)}:
                    trial["imp.branches"] = sorted(extra - {max(sparsities)})
            trials.append(trial)
    unique = {json.dumps(t, sort_keys=True): t for t in trials}
    return list(unique.values())


def longest_first(base: dict[str, Any], trials: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``trials`` ordered by expected cost, longest first (equal costs keep their order)."""
    from drive.plan import expected_cost
    from sweeps.spec import trial_config

    costs = [expected_cost(trial_config(base, t)) for t in trials]
    order = sorted(range(len(trials)), key=lambda i: costs[i], reverse=True)  # stable
    return [trials[i] for i in order]


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
