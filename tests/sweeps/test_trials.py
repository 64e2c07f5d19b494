from ray import tune

from sweeps.checks import load_sweep
from sweeps.runtime import param_space, sampled_space
from sweeps.spec import load_spec
from sweeps.trials import expand_trials, sampled_overrides


def spec(sweep, **fields):
    return load_spec(tree={"sweep": sweep, **fields})


def test_warmup_and_iterations_vary_for_drive_only():
    trials = expand_trials(spec({"method": ["drive", "snip"], "sparsity": [0.5, 0.9],
                                 "warmup_epochs": [1, 2], "prune_iterations": [1, 10]}))
    drive = [t for t in trials if t["method"] == "drive"]
    snip = [t for t in trials if t["method"] == "snip"]
    assert len(drive) == 2 * 2 * 2 and len(snip) == 2
    assert all("warmup_epochs" not in t and "prune_iterations" not in t for t in snip)
    assert {(t["warmup_epochs"], t["prune_iterations"]) for t in drive} == {(1, 1), (1, 10), (2, 1), (2, 10)}


def test_dense_gets_one_trial_per_seed_and_imp_one_per_seed_reporting_every_sparsity():
    trials = expand_trials(spec({"method": ["dense", "imp"], "sparsity": [0.5, 0.9, 0.8],
                                 "seed": [0, 1], "warmup_epochs": [1, 2]}))
    dense = [t for t in trials if t["method"] == "dense"]
    imp = [t for t in trials if t["method"] == "imp"]
    assert dense == [{"method": "dense", "seed": 0}, {"method": "dense", "seed": 1}]
    assert imp == [{"method": "imp", "seed": s, "sparsity": 0.9, "imp.branches": [0.5, 0.8]} for s in (0, 1)]


def test_a_sparsity_axis_with_0_gives_imp_no_branch_at_0():
    """0 is IMP's trunk level 0 (its dense training), not a branch: imp.branches are in (0, 1)
    and a sweep with 0 on its sparsity axis (the dense reference) used to be refused for IMP."""
    trials = expand_trials(spec({"method": ["imp", "snip"], "sparsity": [0, 0.5, 0.9]}))
    assert trials[0] == {"method": "imp", "sparsity": 0.9, "imp.branches": [0.5]}
    assert [t["sparsity"] for t in trials[1:]] == [0, 0.5, 0.9]
    assert expand_trials(spec({"method": ["imp"], "sparsity": [0]})) == [{"method": "imp", "sparsity": 0}]


def test_method_from_the_base_config_when_not_an_axis():
    trials = expand_trials(spec({"seed": [0, 1]}, experiment={"method": "synflow"}))
    assert trials == [{"method": "synflow", "seed": 0}, {"method": "synflow", "seed": 1}]


def test_param_space_grid_and_sampled_domains():
    grid = load_sweep(tree={"sweep": {"method": ["drive"], "seed": [0, 1]}})
    assert param_space(grid, grid.points) == {"trial": tune.grid_search(expand_trials(grid.spec))}
    s = load_sweep(tree={"sweep": {"method": ["drive"], "train.lr": {"loguniform": [0.01, 0.1]},
                                   "seed": [0, 1], "drive.weights": {"choice": [[1, 1, 1]]}},
                         "search": {"num_samples": 3}})
    assert param_space(s, s.points) == {}  # the per-point searcher draws the samples
    domains = sampled_space(s, "drive")
    assert isinstance(domains["train.lr"], tune.search.sample.Float)
    assert isinstance(domains["drive.weights"], tune.search.sample.Categorical)
    assert set(sampled_space(s, "snip")) == {"train.lr"}


def test_sampled_values_only_reach_methods_they_apply_to():
    config = {"trial": {"method": "snip"}, "drive.weights": [1, 0, 0], "train.lr": 0.02}
    assert sampled_overrides(config, "snip") == {"train.lr": 0.02}
    assert sampled_overrides(config, "drive") == {"drive.weights": [1, 0, 0], "train.lr": 0.02}


def test_trials_are_ordered_longest_first_imp_then_drive_then_the_rest():
    s = load_sweep(tree={"name": "t", "experiment": {"train": {"epochs": 4}},
                        "sweep": {"method": ["dense", "magnitude", "snip", "drive", "imp"],
                                  "sparsity": [0.5, 0.9], "seed": [0, 1], "prune_iterations": [1, 10]}})
    trials = s.points
    ordered = [t.point for t in s.longest_first()]
    assert sorted(map(str, ordered)) == sorted(map(str, trials))
    methods = [t["method"] for t in ordered]
    assert methods[:2] == ["imp", "imp"] and set(methods[2:6]) == {"drive"}
    assert [t.get("prune_iterations") for t in ordered[2:6]] == [10] * 4
    assert methods[-6:] == ["magnitude"] * 4 + ["dense"] * 2
    # equal costs keep the grid's order
    mags = [t for t in ordered if t["method"] == "magnitude"]
    assert mags == [t for t in trials if t["method"] == "magnitude"]


def test_the_count_without_configs_equals_the_resolved_sweeps():
    from sweeps.trials import count_trials

    for tree in ({"sweep": {"method": ["dense", "drive", "imp", "snip"], "sparsity": [0.5, 0.9],
                            "seed": [0, 1], "warmup_epochs": [1, 2]}},
                 {"sweep": {"method": ["snip", "drive"], "drive.weights": {"choice": [[1, 0, 0]]},
                            "seed": [0, 1]}, "search": {"num_samples": 3}}):
        sweep = load_sweep(tree=tree)
        assert count_trials(sweep.spec) == sweep.total == sum(sweep.samples_per_point())
