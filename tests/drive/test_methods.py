"""The method registry: one entry per method, used everywhere, open to a user's own method."""

import pytest

from drive.config import build_config
from drive.errors import ConfigError
from drive.experiment import run
from drive.masks import keep_count
from drive.method import BUILTINS, METHODS, Method, applies, get_method, in_order
from drive.plan import make_plan


def squared(ctx):
    """A user's score: |w|^2 (ranks like magnitude, so the result is checkable)."""
    return {n: w.detach() ** 2 for n, w in ctx.weights.items()}


#: A method defined here, used by import path ``tests.drive.test_methods:SQUARED``.
SQUARED = Method("squared", score=squared, label="|w|²", color="#112233", marker="*")
PATH = "tests.drive.test_methods:SQUARED"
FAST = {"device": "cpu", "train": {"epochs": 1, "batch_size": 128}, "model_args": {"width": 0.5}}


def test_every_builtin_has_one_complete_entry():
    assert in_order()[:8] == ["dense", "imp", "drive", "snip", "grasp", "synflow", "magnitude", "random"]
    assert set(in_order()) == set(METHODS.names()) == set(BUILTINS)  # every module of drive/methods/
    assert {"erk", "random_uniform", "force", "prospr", "magnitude_after"} <= set(in_order())
    for name in in_order():
        m = get_method(name)
        assert m.name == name and m.display and m.color.startswith("#") and m.cost
        assert (m.score is None) == (m.plan in ("dense", "imp"))
        assert m.reference or m.name in ("dense", "magnitude", "random", "random_uniform")
    assert get_method("drive").iterations == 10 and get_method("synflow").iterations == 100
    assert get_method("drive").data and not get_method("synflow").data


def test_fields_a_method_owns_vary_for_it_alone():
    assert applies("drive.weights", "drive") and not applies("drive.weights", "snip")
    assert applies("warmup_epochs", "drive") and not applies("warmup_epochs", "imp")
    assert applies("imp.rate", "imp") and not applies("imp.rate", "drive")
    assert not applies("sparsity", "dense") and applies("sparsity", "snip")
    assert applies("train.lr", "dense") and applies("train.lr", PATH)


def test_a_user_method_by_import_path_runs_like_a_builtin():
    cfg = build_config({**FAST, "method": PATH, "sparsity": 0.8})
    assert cfg.spec.name == PATH and cfg.spec.display == "|w|²" and cfg.iterations == 1
    assert [s.kind for s in make_plan(cfg)] == ["prune", "train"]
    m = run(cfg)
    assert m["method"] == PATH and m["status"] == "finished"
    assert m["params_remaining"] == keep_count(0.2, m["params_prunable"])
    # |w|^2 ranks like |w|: the same mask as magnitude pruning of the same initial network
    ref = run(build_config({**FAST, "method": "magnitude", "sparsity": 0.8}))
    assert m["layer_density"] == ref["layer_density"]


def test_unknown_methods_and_bad_paths_are_one_line():
    with pytest.raises(ConfigError, match=r"^method: unknown method 'obd'; allowed: dense, drive, .* "
                                          r"or an import path package.module:NAME$"):
        build_config({"method": "obd"})
    with pytest.raises(ConfigError, match=r"method: 'tests.drive.test_methods:squared' does not name "
                                          r"a method"):
        build_config({"method": "tests.drive.test_methods:squared"})  # a function, not a Method
    with pytest.raises(ConfigError, match="cannot import module 'no_such_pkg_xyz'"):
        build_config({"method": "no_such_pkg_xyz:M"})


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="already registered"):
        METHODS.register("snip")(Method("snip", score=squared))
