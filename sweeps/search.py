"""Sampled axes drawn per grid point: every grid point runs, each with its own samples.

A sweep's grid axes (method, sparsity, seed, ...) say *what* to compare; its sampled axes
(``train.lr: {loguniform: [0.01, 0.2]}``) are hyperparameters to tune *for each* of them. So
:class:`PerPointSearch` keeps one searcher per grid point and asks each for ``num_samples``
configurations: the grid is always covered, and a point whose method ignores every sampled axis
runs once (its samples would be identical trials). The searcher of a point is Optuna's TPE
(``search.algorithm: optuna``, learning only from that point's trials) or seeded random
sampling (``random``, or ``grid`` with sampled axes).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
from ray.tune.search import Searcher
from ray.tune.search.sample import Domain


class RandomPoint(Searcher):
    """Independent seeded draws from Tune domains (``tune.loguniform(...)``, ...)."""

    def __init__(self, space: dict[str, Domain], seed: int | None, metric: str | None = None,
                 mode: str | None = None):
        super().__init__(metric=metric, mode=mode)
        self.space = space
        self.rng = np.random.default_rng(seed)

    def suggest(self, trial_id: str) -> dict[str, Any]:
        return {key: _python(domain.sample(random_state=self.rng)) for key, domain in self.space.items()}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def _python(value: Any) -> Any:
    """numpy scalars -> Python numbers (they end up in JSON and YAML)."""
    return value.item() if isinstance(value, np.generic) else value


class PerPointSearch(Searcher):
    """One searcher per grid point, each asked for its point's number of samples.

    Suggestions go breadth first (every point's first sample before any second one), so a
    stopped sweep has covered as much of the grid as possible. A suggestion is the trial's
    config: ``{"trial": <grid point>, <sampled key>: value, ...}``.
    """

    def __init__(self, points: list[dict[str, Any]], samples: list[int],
                 make: Callable[[int], Searcher], metric: str, mode: str):
        super().__init__(metric=metric, mode=mode)
        self.points = points
        self.samples = samples
        self.searchers = [make(i) for i in range(len(points))]
        self.given = [0] * len(points)
        self.owner: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Trials this search runs in all (Tune's ``num_samples``)."""
        return sum(self.samples)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec) -> bool:
        return True  # the space is fixed at construction

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        order = sorted(range(len(self.points)), key=lambda i: (self.given[i], i))
        for i in order:
            if self.given[i] >= self.samples[i]:
                continue
            sampled = self.searchers[i].suggest(trial_id)
            if sampled is None or sampled == Searcher.FINISHED:
                continue
            self.given[i] += 1
            self.owner[trial_id] = i
            return {"trial": self.points[i], **sampled}
        return Searcher.FINISHED if self.given == self.samples else None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self.owner and self.metric in result:
            self.searchers[self.owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self.owner:
            if result is not None and self.metric not in result:
                result = None  # the trial never reported the metric (errored before evaluating)
            self.searchers[self.owner[trial_id]].on_trial_complete(trial_id, result, error)

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def point_searcher(algorithm: str, space: dict[str, Domain], seed: int | None, metric: str,
                   mode: str) -> Searcher:
    """The searcher of one grid point: Optuna's TPE or seeded random draws."""
    if algorithm == "optuna":
        from ray.tune.search.optuna import OptunaSearch

        return OptunaSearch(space=OptunaSearch.convert_search_space(space), metric=metric,
                            mode=mode, seed=seed)
    return RandomPoint(space, seed, metric, mode)
