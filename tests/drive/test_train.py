"""The training step: fused SGD, torch.compile against eager, masks under compilation."""

import torch

from drive.config import TrainConfig
from drive.masks import Masks
from drive.models import build_model
from drive.train import compile_enabled, make_optimizer, train_step, training_model

CPU = torch.device("cpu")


def test_sgd_is_fused_where_the_device_has_the_kernel():
    opt = make_optimizer(torch.nn.Linear(3, 2), TrainConfig(nesterov=True))
    assert opt.defaults["fused"] and opt.defaults["nesterov"]


def test_compile_auto_is_off_on_cpu_and_then_the_model_itself_trains():
    model = torch.nn.Linear(3, 2)
    assert not compile_enabled(TrainConfig(), CPU)
    assert compile_enabled(TrainConfig(), torch.device("cuda"))
    assert training_model(model, TrainConfig(), CPU) is model
    assert training_model(model, TrainConfig(compile=False), torch.device("cuda")) is model


def _model_and_masks(seed: int):
    torch.manual_seed(seed)
    model = build_model("digits_cnn", 10, 1, 8, width=0.5).to(memory_format=torch.channels_last)
    return model, Masks.for_model(model)


def test_compiled_training_matches_eager_and_keeps_masks_exact():
    """One compilation (CPU, tiny model): the same losses as eager within float tolerance,
    through a pruning in mid-training that needs no recompilation, pruned weights exactly 0."""
    torch._dynamo.utils.counters.clear()
    cfg = TrainConfig(compile=True, nesterov=True, weight_decay=1e-3, lr=0.05)
    gen = torch.Generator().manual_seed(0)
    batches = [(torch.randn(32, 1, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last),
                torch.randint(0, 10, (32,), generator=gen)) for _ in range(4)]
    losses = {}
    for name in ("eager", "compiled"):
        model, masks = _model_and_masks(0)
        optimizer = make_optimizer(model, cfg)
        stepper = model if name == "eager" else training_model(model, cfg, CPU)
        assert (stepper is model) == (name == "eager")
        out = []
        for step in range(10):
            if step == 4:  # prune in mid-training, as DRIVE does after its warm-up
                masks.prune_to({n: w.detach().abs() for n, w in masks.weights.items()}, 0.3)
                masks.mask_optimizer_state(optimizer)
            x, y = batches[step % len(batches)]
            loss, _ = train_step(stepper, x, y, optimizer, masks, cfg, CPU)
            out.append(float(loss))
        for n, w in masks.weights.items():
            assert (w[~masks.keep[n]] == 0).all(), (name, n)
        losses[name] = out
        if name == "compiled":
            assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 1  # compiled once
    torch.testing.assert_close(torch.tensor(losses["compiled"]), torch.tensor(losses["eager"]),
                               rtol=1e-4, atol=1e-5)
    assert losses["eager"][-1] < losses["eager"][0]


def test_the_experiment_trains_through_the_compiled_wrapper_and_keeps_the_model_for_the_rest():
    from drive.config import build_config
    from drive.experiment import Experiment

    exp = Experiment(build_config({"device": "cpu", "train": {"compile": True}}))
    assert exp.train_model is not exp.model and exp.train_model._orig_mod is exp.model  # lazy: no compile yet
    eager = Experiment(build_config({"device": "cpu"}))  # auto: eager on the CPU
    assert eager.train_model is eager.model
