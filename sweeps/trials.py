"""From a sweep's axes to its trials, each resolved and validated once.

Grid axes are expanded here, not by Tune, because some axes are conditional:

- a method's own argument (``drive.weights``, ``grasp.temperature``, a plugin's ``power.p``)
  varies for that method only, and so does a generic field that some methods alone use
  (``warmup_epochs`` and ``prune.rewind`` for the methods pruned after a warm-up,
  ``prune_iterations`` for DRIVE and FORCE, ``finetune.*`` for those pruned after training):
  :func:`drive.method.applies`. Other methods get one trial instead of copies that differ in a
  field they ignore.
- ``dense`` ignores ``sparsity``: one trial per combination of the other axes.
- ``imp`` gets one trial per combination of the other axes: its headline is the highest sparsity
  of the axis and every other one is a branch off its trunk (``imp.branches``), each reported
  with exactly the accuracy and cost of a standalone IMP run to it.

:func:`resolve` turns a sweep into a :class:`Sweep`: its grid points with their experiment
configs, every one validated here (and its sampled axes at their bounds), so that a bad value is
one line before Ray starts. A trial's config is its base config with its point's dotted values,
without the argument sections of the sweep's other methods. Trials start longest first
(:meth:`Sweep.longest_first`, by :func:`drive.plan.expected_cost`), so that no long trial is left
running alone at the end of a sweep while the other slots idle.

This module imports no Ray.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drive.config import DataConfig, ExperimentConfig, build_config, set_dotted
from drive.errors import ConfigError, RegistryError
from drive.method import BUILTINS, applies, get_method
from sweeps.spec import SweepError, SweepSpec

#: Problem lines shown at most (the rest are more of the same).
MAX_PROBLEMS = 20


@dataclass(frozen=True)
class Trial:
    """One grid point: its dotted values (what Tune's config carries) and its resolved config."""

    point: dict[str, Any]
    config: ExperimentConfig

    @property
    def method(self) -> str:
        return self.config.method


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: the spec, its resolved base config, its methods and its trials."""

    spec: SweepSpec
    base: dict[str, Any]
    methods: tuple[str, ...]
    trials: tuple[Trial, ...]

    @property
    def points(self) -> list[dict[str, Any]]:
        return [t.point for t in self.trials]

    def samples_per_point(self) -> list[int]:
        """``num_samples`` for a grid point some sampled axis applies to, else 1."""
        return [self.spec.search.num_samples if self.sampled_keys(t.method) else 1 for t in self.trials]

    @property
    def total(self) -> int:
        """How many trials the sweep runs in all (grid points x their samples)."""
        return sum(self.samples_per_point())

    def sampled_keys(self, method: str) -> list[str]:
        """The sampled axes that matter to ``method``."""
        return [k for k in self.spec.sampled_axes if applies(k, method, self.methods)]

    def longest_first(self) -> list[Trial]:
        """The trials ordered by expected cost, longest first (equal costs keep their order)."""
        from drive.plan import expected_cost

        costs = [expected_cost(t.config) for t in self.trials]
        return [self.trials[i] for i in sorted(range(len(costs)), key=lambda i: costs[i], reverse=True)]

    def longest_epochs(self) -> int:
        """Training epochs of the longest trial (ASHA's ``max_t`` by default)."""
        from drive.plan import make_plan, total_epochs

        return max(total_epochs(make_plan(t.config)) for t in self.trials)

    def config_of(self, tune_config: dict[str, Any]) -> ExperimentConfig:
        """The experiment config of a trial from its Tune config (grid point plus samples)."""
        return trial_config(self.base, trial_overrides(tune_config, self.methods), self.methods)


def resolved_base(spec: SweepSpec) -> dict[str, Any]:
    """The base experiment config with a relative data root made absolute.

    Tune runs each trial inside its own folder, so ``./data`` must be pinned to the launch
    directory (``~`` and ``$VARIABLE`` are kept: every node expands them itself).
    """
    base = copy.deepcopy(spec.experiment)
    data = base.setdefault("data", {})
    if isinstance(data, dict):
        root = data.get("root", DataConfig().root)
        if isinstance(root, str) and not root.startswith(("~", "$")) and not Path(root).is_absolute():
            data["root"] = str(Path(root).resolve())
    return base


def _is_imp(method: str) -> bool:
    try:
        return get_method(method).plan == "imp"
    except RegistryError:  # an unknown method: validation reports it
        return False


def expand_trials(spec: SweepSpec) -> list[dict[str, Any]]:
    """The sweep's grid points after the conditional rules, as dotted values per trial."""
    axes = spec.grid_axes
    methods = axes.get("method", [spec.experiment.get("method", "drive")])
    among = [m for m in methods if isinstance(m, str)]
    trials: list[dict[str, Any]] = []
    for method in methods:
        relevant = {k: v for k, v in axes.items() if k != "method" and applies(k, method, among)}
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


def count_trials(spec: SweepSpec) -> int:
    """How many trials a sweep runs in all (grid points x their samples), without building
    their configs (a sweep already validated: its ``sweep.yaml``)."""
    methods = sweep_methods(spec)
    return sum(spec.search.num_samples if any(applies(k, p.get("method", "drive"), methods)
                                              for k in spec.sampled_axes) else 1
               for p in expand_trials(spec))


def sweep_methods(spec: SweepSpec) -> tuple[str, ...]:
    """The methods of a sweep: its ``method`` axis, or the base config's method."""
    methods = spec.grid_axes.get("method", [spec.experiment.get("method", "drive")])
    return tuple(dict.fromkeys(m for m in methods if isinstance(m, str)))


def trial_config(base: dict[str, Any], point: dict[str, Any],
                 methods: tuple[str, ...] | list[str] = ()) -> ExperimentConfig:
    """The experiment config of one trial: the base config with the trial's dotted values set,
    without the argument sections of the sweep's other ``methods`` (a base config may hold the
    arguments of every method it serves)."""
    tree = copy.deepcopy(base)
    for key, value in point.items():
        set_dotted(tree, key, value)
    method = tree.get("method", "drive")
    for other in methods:
        if other == method or other in BUILTINS:  # a built-in's section is checked, then left out
            continue
        try:
            section = get_method(other).section
        except RegistryError:
            continue
        if section != _section_of(method):
            tree.pop(section, None)
    return build_config(tree)


def _section_of(method: Any) -> str | None:
    try:
        return get_method(method).section if isinstance(method, str) else None
    except RegistryError:
        return None


def sampled_overrides(config: dict[str, Any], method: str, methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """The values Tune sampled for this trial, limited to the fields that matter to ``method``."""
    return {k: v for k, v in config.items() if k != "trial" and applies(k, method, methods)}


def trial_overrides(config: dict[str, Any], methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """The dotted config values of a trial from its Tune config: grid point plus samples."""
    point = dict(config["trial"])
    point.update(sampled_overrides(config, point.get("method", "drive"), methods))
    return point


def resolve(spec: SweepSpec, base: dict[str, Any] | None = None) -> Sweep:
    """Expand the sweep and build every trial's experiment config once (``base``: the resolved
    base config saved with a sweep that resumes; by default :func:`resolved_base`).

    A problem that the base config has by itself is reported as ``experiment.<field>``; one that
    an axis brings in as ``sweep: <field> (e.g. trial ...)``. A base value that no trial uses
    (say a warm-up too long for DRIVE in a sweep without DRIVE) is no problem. Each sampled axis
    is tried at its bounds (and one value inside its range) on every trial it applies to.

    Raises:
        SweepError: one line per distinct problem.
    """
    base = resolved_base(spec) if base is None else base
    methods = sweep_methods(spec)
    points = expand_trials(spec)
    in_base = _base_problems(spec.experiment, methods)
    found: dict[str, str] = {}  # problem line -> where it comes from
    trials = []
    for point in points:
        for bounds in _sampler_bounds(spec):
            method = point.get("method", "drive")
            values = {**point, **{k: v for k, v in bounds.items() if applies(k, method, methods)}}
            try:
                config = trial_config(base, values, methods)
            except ConfigError as e:
                for p in e.problems:
                    found.setdefault(p, "" if p in in_base else
                                     ", ".join(f"{k}={v}" for k, v in values.items()))
                continue
            if not bounds:
                trials.append(Trial(point, config))
    if found:
        raise SweepError([f"experiment.{p}" if not where else f"sweep: {p} (e.g. trial {where})"
                          for p, where in found.items()][:MAX_PROBLEMS])
    return Sweep(spec, base, methods, tuple(trials))


def _base_problems(experiment: dict[str, Any], methods: tuple[str, ...]) -> set[str]:
    try:
        trial_config(experiment, {}, methods)
    except ConfigError as e:
        return set(e.problems)
    return set()


def _sampler_bounds(spec: SweepSpec) -> list[dict[str, Any]]:
    """Each sampled axis at each of its extreme (or choice) values and at one value inside its
    range, one axis at a time, so that a bad range fails before Ray starts (a continuous range
    over an integer or boolean field fails at the inner value: 1.37 is no epoch count)."""
    checks: list[dict[str, Any]] = [{}]
    for key, sampler in spec.sampled_axes.items():
        kind, args = next(iter(sampler.items()))
        if kind == "choice":
            values = list(args)
        elif kind == "randint":
            values = [args[0], args[1] - 1]
        else:
            low, high = args[0], args[1]
            inner = low + 0.37 * (high - low)
            if kind == "quniform":  # a multiple of q inside the range, as Tune rounds to
                inner = min((v for v in (args[2] * round(low / args[2] + k) for k in (1, 2))
                             if v != int(v) and low <= v <= high), default=low)
            values = [low, inner, high]
        checks += [{key: v} for v in values]
    return checks
