"""The live objects of one experiment, built from its config: the device, the data set and its
loaders, the model (and the module the training steps call), the masks, and the scoring batches
a method's score needs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from drive.config import ExperimentConfig
from drive.data import check_epoch_batches, load_dataset, make_loaders, make_val_loader
from drive.data.augment import derive_seed
from drive.data.balanced import class_balanced_batches
from drive.errors import ConfigError
from drive.flops import count_costs
from drive.masks import Masks, check_keeps_a_weight
from drive.models import build_model
from drive.train import input_dtype, training_model

Batch = tuple[torch.Tensor, torch.Tensor]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError([f"device: {name} requested but CUDA is not available; use auto or cpu"])
    return device


@dataclass
class Parts:
    """What an experiment trains, prunes and evaluates."""

    device: torch.device
    data: Any
    model: nn.Module
    masks: Masks
    train_model: nn.Module  # the model, or a compiled wrapper sharing its parameters
    train_batches: Any
    test_batches: Any
    val_batches: Any | None

    @classmethod
    def build(cls, cfg: ExperimentConfig) -> Parts:
        """Seed torch with ``cfg.seed``, then load the data and build a freshly initialised model
        (channels_last where asked), its masks and loaders."""
        device = resolve_device(cfg.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        data = load_dataset(cfg.dataset, cfg.data)
        check_epoch_batches(data, cfg.dataset, cfg.data, cfg.train)
        model = build_model(cfg.model, data.num_classes, data.in_channels, data.image_size,
                            sample_shape=data.sample_shape, **cfg.model_args).to(device)
        channels_last = cfg.train.channels_last
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        masks = Masks.for_model(model, cfg.prune.exclude_first, cfg.prune.exclude_last)
        check_keeps_a_weight(cfg.sparsity, masks.total, cfg.model)
        train_model = training_model(model, cfg.train, device)
        dtype = input_dtype(cfg.train, device)
        train_batches, test_batches = make_loaders(
            data, cfg.data, cfg.train.batch_size, cfg.train.eval_batch_size, device, cfg.seed,
            channels_last=channels_last, dtype=dtype, drop_last=cfg.train.drop_last)
        val_batches = make_val_loader(data, cfg.data, cfg.train.eval_batch_size, device, cfg.seed,
                                      channels_last=channels_last, dtype=dtype)
        return cls(device, data, model, masks, train_model, train_batches, test_batches, val_batches)

    def footprint(self) -> dict[str, Any]:
        """What the current masks buy in theory (:data:`drive.schema.FOOTPRINT`)."""
        return count_costs(self.model, tuple(self.data.sample_shape), self.masks.keep).to_dict()

    def score_batches(self, cfg: ExperimentConfig) -> list[Batch]:
        """The scoring batches of ``cfg``'s method: ``score_batches`` of them (or as many as the
        method needs), the same at every pruning iteration, or for a method with
        ``fresh_batches`` (FORCE) a new group at each of the T iterations."""
        spec = cfg.spec
        count = max(cfg.prune.score_batches, spec.batches(cfg) if spec.batches else 1)
        groups = cfg.iterations if spec.fresh_batches else 1
        return [batch for g in range(groups) for batch in self._score_group(cfg, g, count)]

    def _score_group(self, cfg: ExperimentConfig, group: int, count: int) -> list[Batch]:
        """``count`` training batches, a function of (seed, group): the first batches of a fixed
        order, or class-balanced ones (``prune.balanced_batches``)."""
        per_class = cfg.prune.balanced_batches
        if per_class:
            seed = cfg.seed if group == 0 else derive_seed(cfg.seed, group)
            return [self.train_batches.samples(index) for index in class_balanced_batches(
                self.data, per_class, count, seed)]
        self.train_batches.set_epoch(-1 - group)
        batches = []
        for x, y in self.train_batches:  # scoring runs without autocast: float32 batches
            batches.append((x.float(), y))
            if len(batches) == count:
                break
        return batches
