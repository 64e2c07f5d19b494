"""End-to-end experiments on scikit-learn's digits (CPU, a few epochs each)."""

import pytest
import torch

from drive.config import build_config
from drive.errors import CheckpointError
from drive.experiment import Experiment, run
from drive.masks import keep_count
from drive.state import load_state, save_state

FAST = {"device": "cpu", "train": {"epochs": 3, "batch_size": 128, "eval_every": 1},
        "model_args": {"width": 0.5}}


def config(**fields):
    tree = {**FAST, **fields}
    tree["train"] = {**FAST["train"], **fields.get("train", {})}
    return build_config(tree)


def assert_pruned_weights_zero(exp: Experiment) -> None:
    for n, w in exp.masks.weights.items():
        assert (w[~exp.masks.keep[n]] == 0).all(), n


@pytest.mark.parametrize("method,extra", [
    ("drive", {"warmup_epochs": 1, "prune_iterations": 3}),
    ("snip", {}), ("grasp", {}), ("synflow", {"prune_iterations": 5}), ("magnitude", {}),
    ("random", {}),
])
def test_every_method_reaches_the_exact_density_and_keeps_pruned_weights_zero(method, extra):
    exp = Experiment(config(method=method, sparsity=0.9, **extra))
    m = exp.run()
    assert m["status"] == "finished"
    assert m["params_remaining"] == keep_count(0.1, m["params_prunable"])
    assert m["density"] == m["params_remaining"] / m["params_prunable"]
    assert set(m["layer_density"]) == set(exp.masks.keep)
    assert 0 <= m["test_acc"] <= 1 and m["best_test_acc"] >= m["test_acc"]
    assert m["total_time_s"] == pytest.approx(m["prune_time_s"] + m["train_time_s"])
    assert_pruned_weights_zero(exp)


def test_drive_runs_warmup_then_prunes_then_trains_the_rest():
    cfg = config(method="drive", warmup_epochs=2, prune_iterations=4, train={"epochs": 4})
    exp = Experiment(cfg)
    m = exp.run()
    phases = [h["phase"] for h in m["history"]]
    assert phases == ["warmup", "warmup", "prune", "train", "train"]
    assert [h["density"] for h in m["history"]][:2] == [1.0, 1.0]
    n_train = exp.data.num_train
    assert m["prune_samples"] == 2 * n_train + 4 * cfg.train.batch_size
    assert m["prune_iterations"] == 4 and m["warmup_epochs"] == 2
    # the LR schedule continues through pruning: cosine over all 4 epochs
    lrs = [h["lr"] for h in m["history"] if "lr" in h]
    assert lrs[0] > lrs[1] > lrs[2] > lrs[3]


def test_drive_rewind_to_init_trains_from_the_initial_weights():
    exp = Experiment(config(method="drive", warmup_epochs=1, prune_iterations=2,
                            prune={"rewind": "init"}, train={"epochs": 2}))
    init = {k: v.clone() for k, v in exp.init_weights.items()}
    seen = {}

    def spy(p):
        if p.metrics["phase"] == "rewind":
            seen.update({k: v.clone() for k, v in exp.model.state_dict().items()})

    m = exp.run(spy)
    assert [h["phase"] for h in m["history"]] == ["warmup", "prune", "rewind", "train", "train"]
    for n, keep in exp.masks.keep.items():
        key = f"{n}.weight"
        assert torch.equal(seen[key][keep], init[key][keep])
    assert_pruned_weights_zero(exp)


@pytest.mark.parametrize("method,samples", [("snip", 128), ("synflow", 3), ("magnitude", 0),
                                            ("grasp", 256)])
def test_prune_samples_of_at_init_methods(method, samples):
    m = run(config(method=method, prune_iterations=1 if method != "synflow" else 3,
                   train={"epochs": 1}))
    assert m["prune_samples"] == samples


def test_imp_runs_a_trunk_and_a_branch_per_requested_sparsity():
    cfg = config(method="imp", sparsity=0.6, imp={"rate": 0.4, "branches": [0.5]}, train={"epochs": 1})
    exp = Experiment(cfg)
    m = exp.run()
    # trunk level 1 at density 0.6; both targets need 2 rounds, so both branch off level 1
    assert [(lv["level"], lv["sparsity"], lv["branch"], lv["requested"]) for lv in m["levels"]] == [
        (1, 0.4, False, False), (2, 0.5, True, True), (2, 0.6, True, True)]
    assert [s.kind for s in exp.plan] == ["train", "prune", "rewind", "train",
                                          "fork", "prune", "rewind", "train", "join",
                                          "fork", "prune", "rewind", "train"]
    assert [lv["params_remaining"] for lv in m["levels"]] == [
        keep_count(d, m["params_prunable"]) for d in (0.6, 0.5, 0.4)]
    last = m["levels"][-1]
    assert last["test_acc"] == m["test_acc"] and last["density"] == m["density"]
    assert m["prune_time_s"] == last["prune_time_s"] and m["prune_samples"] == last["prune_samples"]
    assert m["train_time_s"] == last["train_time_s"] and m["prune_iterations"] == 2
    # a level's pruning cost is the training of the rounds before it, never a sibling branch's
    n_train = exp.data.num_train
    assert [lv["prune_samples"] for lv in m["levels"]] == [n_train, 2 * n_train, 2 * n_train]
    assert_pruned_weights_zero(exp)


def test_a_target_on_a_trunk_level_is_that_level_not_a_copy():
    m = run(config(method="imp", sparsity=0.75, imp={"rate": 0.5, "branches": [0.5]}, train={"epochs": 1}))
    assert [(lv["level"], lv["sparsity"], lv["branch"], lv["requested"]) for lv in m["levels"]] == [
        (1, 0.5, False, True), (2, 0.75, True, True)]
    alone = run(config(method="imp", sparsity=0.5, imp={"rate": 0.5}, train={"epochs": 1}))
    assert alone["test_acc"] == m["levels"][0]["test_acc"]
    assert alone["prune_samples"] == m["levels"][0]["prune_samples"]


def test_imp_branch_to_s_is_exactly_a_standalone_run_to_s():
    """The level at s of a trunk-and-branches run equals a standalone IMP run to s: same mask,
    same accuracy, same cost in sample passes (open_lth's branches; no stops that add rounds)."""
    base = {"method": "imp", "train": {"epochs": 2}}
    imp = {"rate": 0.5, "rewind_epoch": 1}
    exp = Experiment(config(**base, sparsity=0.9, imp={**imp, "branches": [0.5, 0.8]}))
    masks_at = {}

    def keep_masks(p):
        if p.level is not None and p.level["requested"]:
            masks_at[p.level["sparsity"]] = {n: m.clone() for n, m in exp.masks.keep.items()}

    swept = {lv["sparsity"]: lv for lv in exp.run(keep_masks)["levels"] if lv["requested"]}
    assert sorted(swept) == [0.5, 0.8, 0.9]
    for s in (0.5, 0.8, 0.9):
        alone = Experiment(config(**base, sparsity=s, imp=imp))
        m = alone.run()
        assert m["prune_iterations"] == swept[s]["level"]
        assert m["test_acc"] == swept[s]["test_acc"] and m["best_test_acc"] == swept[s]["best_test_acc"]
        assert m["prune_samples"] == swept[s]["prune_samples"]
        assert all(torch.equal(alone.masks.keep[n], masks_at[s][n]) for n in masks_at[s])


def test_imp_late_rewinding_rewinds_to_the_saved_epoch():
    cfg = config(method="imp", sparsity=0.36, imp={"rate": 0.2, "rewind_epoch": 1},
                 train={"epochs": 2})
    exp = Experiment(cfg)
    init = {k: v.clone() for k, v in exp.model.state_dict().items()}
    rewound = []

    def spy(p):
        if p.metrics["phase"] == "rewind":
            rewound.append({k: v.clone() for k, v in exp.model.state_dict().items()})

    m = exp.run(spy)
    assert len(m["levels"]) == 2
    for state in rewound:
        for n, keep in exp.masks.keep.items():
            key = f"{n}.weight"
            assert torch.equal(state[key][keep], exp.imp.rewind_weights[key][keep])
    key = next(iter(init))
    assert not torch.equal(exp.imp.rewind_weights[key], init[key])  # epoch 1, not init
    assert exp.init_weights is None  # IMP rewinds to its own snapshot only
    # level 0 trains epochs 0..2, each later level epochs r..E = 1..2
    phases = [h["phase"] for h in m["history"] if "train_loss" in h]
    assert phases == ["imp", "imp", "imp", "train"]


def test_imp_under_adamw_starts_every_round_with_a_fresh_optimiser():
    """At each rewind the AdamW optimiser is dropped and the next round builds a new one: after
    a round's first epoch its step count is that epoch's steps, not the rounds' sum."""
    cfg = config(method="imp", sparsity=0.5, imp={"rate": 0.3},
                 train={"epochs": 2, "optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.1})
    exp = Experiment(cfg)
    steps = -(-exp.parts.data.num_train // cfg.train.batch_size)
    optimizers, seen = [], []

    def callback(p):
        if p.metrics["phase"] == "rewind":
            assert exp.optimizer is None
        if "train_loss" in p.metrics and p.metrics["epoch"] == 1:
            optimizers.append(exp.optimizer)
            seen.append({int(s["step"]) for s in exp.optimizer.state.values()})
        assert_exact_zeros(exp)

    m = exp.run(callback)
    assert m["status"] == "finished" and m["density"] == pytest.approx(0.5, abs=1e-3)
    assert len(optimizers) == 3 and len({id(o) for o in optimizers}) == 3  # dense, trunk level 1, branch
    assert seen == [{steps}] * 3


def _stop_after(n_events: int):
    """A callback that keeps the state of event n, then interrupts the run."""
    holder = {}

    def callback(p):
        holder["count"] = holder.get("count", 0) + 1
        if holder["count"] == n_events:
            holder["state"] = p.state()
            raise KeyboardInterrupt

    return holder, callback


def comparable(m: dict) -> dict:
    drop = {"prune_time_s", "train_time_s", "total_time_s", "eval_time_s", "wall_time_s", "history",
            "levels"}
    out = {k: v for k, v in m.items() if k not in drop}
    out["history"] = [{k: v for k, v in h.items() if not k.endswith("_time_s")} for h in m["history"]]
    out["levels"] = [{k: v for k, v in lv.items() if not k.endswith("_time_s")} for lv in m["levels"]]
    return out


@pytest.mark.parametrize("fields,stop", [
    ({"method": "drive", "warmup_epochs": 2, "prune_iterations": 3, "train": {"epochs": 4}}, 1),
    ({"method": "drive", "warmup_epochs": 2, "prune_iterations": 3, "train": {"epochs": 4}}, 3),
    ({"method": "drive", "warmup_epochs": 1, "prune_iterations": 2, "train": {"epochs": 3}}, 4),
    ({"method": "imp", "sparsity": 0.5, "imp": {"rate": 0.3}, "train": {"epochs": 2}}, 4),
    ({"method": "imp", "sparsity": 0.5, "imp": {"rate": 0.3, "branches": [0.3]}, "train": {"epochs": 2}}, 5),
    ({"method": "imp", "sparsity": 0.5, "imp": {"rate": 0.3, "branches": [0.3]}, "train": {"epochs": 2}}, 7),
    ({"method": "snip", "train": {"epochs": 3}}, 2),
    ({"method": "drive", "warmup_epochs": 1, "prune_iterations": 2,
      "train": {"epochs": 3, "optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.1, "no_decay": ["bias"]}}, 2),
])
def test_resumed_experiment_ends_with_the_same_metrics(fields, stop, tmp_path):
    cfg = config(**fields)
    straight = run(cfg)
    holder, callback = _stop_after(stop)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback)
    save_state(holder["state"], tmp_path / "state.pt")
    resumed = run(cfg, state=load_state(tmp_path / "state.pt"))
    assert comparable(resumed) == comparable(straight)


def test_resume_refuses_a_state_of_another_config():
    holder, callback = _stop_after(1)
    with pytest.raises(KeyboardInterrupt):
        run(config(method="snip"), callback)
    with pytest.raises(CheckpointError, match="different config.*sparsity"):
        Experiment(config(method="snip", sparsity=0.5), holder["state"])
    with pytest.raises(CheckpointError, match="different config.*data"):
        Experiment(config(method="snip", data={"split_seed": 1}), holder["state"])
    # another node keeps its files elsewhere: the same experiment continues there
    Experiment(config(method="snip", data={"root": "/elsewhere/data", "download": True}), holder["state"])


def test_unreadable_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint: cannot read"):
        load_state(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_state(tmp_path / "missing.pt")


def test_diverging_run_ends_with_a_recorded_reason():
    m = run(config(method="magnitude", sparsity=0.5, train={"lr": 1e12, "momentum": 0.0}))
    assert m["status"] == "diverged"
    assert "loss" in m["reason"]


def test_same_seed_same_result_and_other_seed_differs():
    a = run(config(method="snip", train={"epochs": 1}))
    b = run(config(method="snip", train={"epochs": 1}))
    c = run(config(method="snip", seed=1, train={"epochs": 1}))
    assert comparable(a) == comparable(b)
    assert a["layer_density"] != c["layer_density"] or a["test_acc"] != c["test_acc"]


def test_dense_baseline_prunes_nothing():
    m = run(config(method="dense", train={"epochs": 1}))
    assert m["density"] == 1.0 and m["sparsity"] == 0.0
    assert m["prune_time_s"] == 0.0 and m["prune_samples"] == 0


def test_grasp_scores_class_balanced_batches_when_asked():
    exp = Experiment(config(method="grasp", train={"epochs": 1},
                            prune={"balanced_batches": 2, "score_batches": 3}))
    batches = exp.parts.score_batches(exp.cfg)
    assert [len(y) for _, y in batches] == [20, 20, 20]
    assert all(torch.bincount(y, minlength=10).tolist() == [2] * 10 for _, y in batches)
    m = exp.run()
    assert m["prune_samples"] == 2 * 3 * 20  # GraSP: two passes over every scored sample


def test_imp_branches_must_lie_below_the_headline_sparsity():
    from drive.errors import ConfigError

    with pytest.raises(ConfigError, match=r"imp.branches: must be below sparsity \(0.5\)"):
        config(method="imp", sparsity=0.5, imp={"branches": [0.8]})


def assert_exact_zeros(exp: Experiment) -> None:
    """Pruned weights are 0.0 and so is their optimiser state (SGD's momentum, AdamW's moments):
    nothing can revive them."""
    assert_pruned_weights_zero(exp)
    if exp.optimizer is not None:
        for n, w in exp.masks.weights.items():
            for key, buf in exp.optimizer.state.get(w, {}).items():
                if key != "step":
                    assert (buf[~exp.masks.keep[n]] == 0).all(), (n, key)


@pytest.mark.parametrize("fields,stop", [
    ({"method": "imp", "sparsity": 0.75, "imp": {"rate": 0.5, "rewind_epoch": 1, "branches": [0.6]}}, 6),
    ({"method": "imp", "sparsity": 0.5, "imp": {"rate": 0.5, "rewind": "lr"}}, 4),
    ({"method": "drive", "warmup_epochs": 1, "prune_iterations": 2}, 3),
    ({"method": "imp", "sparsity": 0.75, "imp": {"rate": 0.5, "rewind_epoch": 1, "branches": [0.6]},
      "train": {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.1}}, 6),
    ({"method": "drive", "warmup_epochs": 1, "prune_iterations": 2,
      "train": {"optimizer": "adamw", "lr": 1e-2, "weight_decay": 0.1, "no_decay": ["bn", "bias"]}}, 3),
])
def test_pruned_weights_stay_exactly_zero_through_rewinds_and_a_resume(fields, stop, tmp_path):
    """Only gradients are masked per step (no re-apply after it): at every epoch, rewind, fork
    and join, and after resuming from a checkpoint on disk, pruned weights and their optimiser
    state are exactly zero, with Nesterov momentum (or AdamW's moments) and weight decay."""
    train = {"epochs": 2, "nesterov": True, "weight_decay": 1e-3, **fields.pop("train", {})}
    cfg = config(**fields, train=train)
    checked = []

    def check(exp):
        def callback(p):
            assert_exact_zeros(exp)
            checked.append(p.metrics["phase"])
        return callback

    first = Experiment(cfg)
    holder, stopper = _stop_after(stop)
    with pytest.raises(KeyboardInterrupt):
        first.run(lambda p: (check(first)(p), stopper(p)))
    save_state(holder["state"], tmp_path / "state.pt")
    resumed = Experiment(cfg, load_state(tmp_path / "state.pt"))
    m = resumed.run(check(resumed))
    assert m["status"] == "finished" and m["density"] < 1
    assert {"prune", "train"} <= set(checked)
    assert_exact_zeros(resumed)


def _tensors(obj) -> list:
    if torch.is_tensor(obj):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


@pytest.mark.parametrize("fields,stop,holds_rewind,copies", [
    # IMP level 1 (70% dense, rewind_epoch 0): the model, its momentum, one rewind point
    ({"method": "imp", "sparsity": 0.5, "imp": {"rate": 0.3}}, 5, True, 3),
    # DRIVE at 90% sparsity: model and momentum packed (non-zeros only) take under one dense copy
    ({"method": "drive", "warmup_epochs": 1, "prune_iterations": 2}, 3, False, 1),
])
def test_a_checkpoint_holds_each_tensor_once_and_masks_as_bits(fields, stop, holds_rewind, copies, tmp_path):
    """No weights twice (IMP rewinding to epoch 0 keeps one copy of the initial weights, DRIVE
    none), masks 8 per byte, pruned tensors packed, and the resumed run ends like the
    uninterrupted one."""
    cfg = config(**fields, train={"epochs": 2})
    holder, callback = _stop_after(stop)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback)
    state = holder["state"]
    assert state["init_weights"] is None and (state["rewind_weights"] is not None) == holds_rewind
    model_bytes = sum(t.numel() * t.element_size() for t in state["model"].values())
    tensors = _tensors(state)
    assert len({t.untyped_storage().data_ptr() for t in tensors}) == len(tensors)  # no tensor twice
    exp = Experiment(cfg)
    for name, packed in state["masks"].items():
        keep = exp.masks.keep[name]
        assert packed.dtype == torch.uint8 and packed.numel() == -(-keep.numel() // 8)
    save_state(state, tmp_path / "state.pt")
    size = (tmp_path / "state.pt").stat().st_size
    assert size < copies * model_bytes + 40_000  # plus the history and the file format (~25 kB)
    resumed = run(cfg, state=load_state(tmp_path / "state.pt"))
    assert comparable(resumed) == comparable(run(cfg))


def test_a_state_of_the_previous_version_still_resumes():
    """Version 2 states (bool masks, the initial weights always kept, a config without the
    fields added since) resume and end like an uninterrupted run."""
    from drive.bits import unpack_bits

    cfg = config(method="drive", warmup_epochs=1, prune_iterations=2, train={"epochs": 2})
    holder, callback = _stop_after(3)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, callback)
    state = dict(holder["state"], version=2, init_weights={})
    exp = Experiment(cfg)
    state["masks"] = {n: unpack_bits(p, exp.masks.keep[n].numel()).view_as(exp.masks.keep[n])
                      for n, p in state["masks"].items()}
    old = state["config"] = {**state["config"], "train": dict(state["config"]["train"]),
                             "data": dict(state["config"]["data"])}
    for section, field in (("train", "compile"), ("train", "cuda_graphs"), ("data", "decode")):
        del old[section][field]
    assert comparable(run(cfg, state=state)) == comparable(run(cfg))
    with pytest.raises(CheckpointError, match="version 1 is not one of 2, 3"):
        Experiment(cfg, dict(state, version=1))


def test_validation_accuracy_at_every_evaluation_and_in_the_metrics():
    m = Experiment(config(method="snip", sparsity=0.5, data={"val_fraction": 0.2})).run()
    trained = [h for h in m["history"] if h["phase"] == "train"]
    assert all(0 <= h["val_acc"] <= 1 and h["val_loss"] > 0 for h in trained)
    assert m["val_acc"] == trained[-1]["val_acc"] and m["val_loss"] == trained[-1]["val_loss"]
    assert "val_acc" not in m["history"][0]  # the pruning step evaluates nothing
    plain = Experiment(config(method="snip", sparsity=0.5)).run()
    assert plain["val_acc"] is None and all("val_acc" not in h for h in plain["history"])


def test_every_result_records_what_its_masks_buy_counted_by_hand():
    """FLOPs per sample of digits_cnn (8x8 digits), by hand: each conv weight does one
    multiply-accumulate per output position (3x3 'same' convs: 8x8, 8x8, then 4x4 after the
    max-pool), each classifier weight one; FLOPs = 2 MACs. The kept count of each layer comes
    from the record's own layer densities."""
    cfg = build_config({**FAST, "method": "snip", "sparsity": 0.8})
    m = run(cfg)
    positions = {"features.0.0": 64, "features.1.0": 64, "features.3.0": 16, "classifier": 1}
    model = Experiment(cfg).model
    weights = {}  # out x in x 3 x 3 per conv, out x in for the classifier, from the layers' sizes
    for name in positions:
        layer = model.get_submodule(name)
        if isinstance(layer, torch.nn.Conv2d):
            weights[name] = layer.out_channels * layer.in_channels * 3 * 3
        else:
            weights[name] = layer.out_features * layer.in_features
    kept = {n: round(m["layer_density"][n] * weights[n]) for n in weights}
    assert m["flops_dense"] == 2 * sum(weights[n] * positions[n] for n in weights)
    assert m["flops"] == 2 * sum(kept[n] * positions[n] for n in weights)
    assert m["layer_flops"] == {n: 2 * kept[n] * positions[n] for n in weights}
    assert m["flops_fraction"] == pytest.approx(m["flops"] / m["flops_dense"])
    assert m["macs"] * 2 == m["flops"]
    # storage: every parameter dense at 4 bytes; the masked weights as values + bitmap
    total = sum(p.numel() for p in model.parameters())
    assert m["bytes_dense"] == 4 * total
    other = total - sum(weights.values())
    assert m["bytes_bitmap"] == 4 * other + sum(4 * kept[n] + -(-weights[n] // 8) for n in weights)
