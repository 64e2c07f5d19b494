"""sweeps.search: one searcher per grid point, num_samples per point, the grid covered."""

import pytest
from ray import tune
from ray.tune.search import Searcher

from sweeps.checks import load_sweep
from sweeps.runtime import make_searcher, param_space
from sweeps.search import PerPointSearch, RandomPoint


def drain(search: Searcher) -> list[dict]:
    out = []
    while True:
        cfg = search.suggest(f"t{len(out)}")
        if cfg == Searcher.FINISHED:
            return out
        assert cfg is not None
        out.append(cfg)


def spec(**search):
    return load_sweep(tree={"sweep": {"method": ["snip", "drive"], "sparsity": [0.5, 0.9],
                                     "drive.weights": {"choice": [[1, 1, 1], [1, 0, 0]]},
                                     "train.lr": {"loguniform": [0.01, 0.2]}},
                           "experiment": {"data": {"val_fraction": 0.1}},
                           "search": {"num_samples": 3, "seed": 1, **search}})


def test_every_grid_point_gets_num_samples_breadth_first():
    s = spec()
    trials = s.points
    configs = drain(make_searcher(s, trials))
    assert len(configs) == len(trials) * 3
    assert [c["trial"] for c in configs[: len(trials)]] == trials  # every point once before any twice
    for point in trials:
        mine = [c for c in configs if c["trial"] == point]
        assert len(mine) == 3 and len({c["train.lr"] for c in mine}) == 3
        assert all(0.01 <= c["train.lr"] <= 0.2 for c in mine)
        # a sampled axis that does not apply to the method is not searched for it
        assert all(("drive.weights" in c) == (point["method"] == "drive") for c in mine)


def test_a_point_no_sampled_axis_applies_to_runs_once():
    s = load_sweep(tree={"sweep": {"method": ["snip", "drive"], "drive.weights": {"choice": [[1, 0, 0]]}},
                         "search": {"num_samples": 4}})
    trials = s.points
    assert s.samples_per_point() == [1, 4]
    assert len(drain(make_searcher(s, trials))) == 5


def test_seeded_search_repeats_and_plain_grids_use_grid_search():
    a, b = (drain(make_searcher(s, s.points)) for s in (spec(), spec()))
    assert a == b
    grid = load_sweep(tree={"sweep": {"seed": [0, 1]}})
    assert make_searcher(grid, grid.points) is None
    assert param_space(grid, grid.points) == {"trial": tune.grid_search(grid.points)}


def test_optuna_learns_per_point_and_restores(tmp_path):
    pytest.importorskip("optuna")
    s = spec(algorithm="optuna", metric="val_acc")
    trials = s.points
    search = make_searcher(s, trials)
    first = search.suggest("a")
    search.on_trial_result("a", {"epochs_done": 1})  # no metric yet: not passed on to Optuna
    search.on_trial_complete("a", {"val_acc": 0.7, "epochs_done": 3})
    search.save(tmp_path / "state.pkl")
    again = PerPointSearch(trials, s.samples_per_point(),
                           lambda i: RandomPoint({}, 0), "val_acc", "max")
    again.restore(tmp_path / "state.pkl")
    assert again.given == search.given and again.owner == {"a": 0}
    assert len(drain(again)) == len(trials) * 3 - 1 and first["trial"] == trials[0]
