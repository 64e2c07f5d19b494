"""Stage plans and the plan-based cost estimate that orders a sweep's trials."""

from drive.config import build_config
from drive.plan import expected_cost, make_plan, total_epochs


def cfg(**fields):
    return build_config({"device": "cpu", "train": {"epochs": 10, "batch_size": 64}, **fields})


def test_expected_cost_counts_the_plans_training_epochs_then_its_scoring_passes():
    imp = cfg(method="imp", sparsity=0.9, imp={"rate": 0.2})
    assert expected_cost(imp) == (total_epochs(make_plan(imp)), 0) == ((1 + 11) * 10, 0)  # level 0, 11 rounds
    assert expected_cost(cfg(method="drive", warmup_epochs=3, prune_iterations=10)) == (10, 10 * 64)
    assert expected_cost(cfg(method="drive", prune={"rewind": "init"}, warmup_epochs=3)) == (13, 10 * 64)
    assert expected_cost(cfg(method="snip")) == (10, 64)
    assert expected_cost(cfg(method="synflow")) == (10, 100)  # data-free: one probe pass per iteration
    assert expected_cost(cfg(method="prospr")) == (10, 4 * 64)  # its meta-gradient's batches
    assert expected_cost(cfg(method="magnitude")) == (10, 1) and expected_cost(cfg(method="dense")) == (10, 0)
    assert expected_cost(cfg(method="magnitude_after"))[0] == 10 + 10 // 4
    order = sorted(["dense", "snip", "drive", "imp"], key=lambda m: expected_cost(cfg(method=m)), reverse=True)
    assert order == ["imp", "drive", "snip", "dense"]
