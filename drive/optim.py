"""Optimisers and LR schedules of the training stages: SGD or AdamW, weight decay by parameter group.

With an empty ``train.no_decay`` every parameter is in one group, in model order, and decays;
otherwise the exempt parameters (normalisation layers, biases) form a second group with weight
decay 0. Both optimisers use the fused implementation (one kernel over all parameters) where the
device supports it, else the multi-tensor one.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from drive.config import TrainConfig

#: The normalisation layers whose weights and biases ``no_decay: [bn]`` exempts.
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._NormBase, nn.GroupNorm,
                                           nn.LayerNorm, nn.LocalResponseNorm,
                                           *([nn.RMSNorm] if hasattr(nn, "RMSNorm") else []))


def no_decay_parameters(model: nn.Module, groups: list[str]) -> set[int]:
    """The ``id``\\ s of the parameters that ``groups`` (items of ``train.no_decay``) exempt."""
    exempt: set[int] = set()
    for module in model.modules():
        is_norm = "bn" in groups and isinstance(module, NORM_TYPES)
        for name, p in module.named_parameters(recurse=False):
            if is_norm or ("bias" in groups and (name == "bias" or name.endswith("_bias"))):
                exempt.add(id(p))
    return exempt


def parameter_groups(model: nn.Module, cfg: TrainConfig) -> list[nn.Parameter] | list[dict[str, Any]]:
    """The optimiser's parameters: all of them in model order (``no_decay`` empty), else the
    decaying ones, then the exempt ones with weight decay 0 (each group in model order; an
    empty group left out)."""
    params = list(model.parameters())
    if not cfg.no_decay:
        return params
    exempt = no_decay_parameters(model, cfg.no_decay)
    groups = [{"params": [p for p in params if id(p) not in exempt]},
              {"params": [p for p in params if id(p) in exempt], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """``train.optimizer``: SGD with momentum (Nesterov optional) or AdamW, weight decay on every
    parameter but those ``train.no_decay`` exempts.

    Fused where the device supports it (on CPU 3-5x faster than the per-parameter loop), else
    the multi-tensor implementation.
    """
    if cfg.optimizer == "adamw":
        cls: type[torch.optim.Optimizer] = torch.optim.AdamW
        kwargs: dict[str, Any] = dict(lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                      weight_decay=cfg.weight_decay)
    else:
        cls = torch.optim.SGD
        kwargs = dict(lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                      weight_decay=cfg.weight_decay)
    params = parameter_groups(model, cfg)
    try:
        return cls(params, fused=True, **kwargs)
    except RuntimeError:  # a device or dtype without the fused kernel
        return cls(params, foreach=True, **kwargs)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                   epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch LR schedule over ``epochs``: step (x gamma at the milestone fractions), cosine, constant."""
    if cfg.schedule == "step":
        milestones = sorted({max(1, round(f * epochs)) for f in cfg.milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def new_optimizer(model: nn.Module, cfg: TrainConfig, start: int = 0, lr: float | None = None
                  ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """A fresh optimiser (no state: no momentum, no Adam moments) and the LR schedule of a
    training stage that begins at epoch ``start`` (the schedule fast-forwarded to it, as late
    rewinding needs); ``lr``: a constant learning rate instead of the schedule (fine-tuning)."""
    if lr is not None:
        cfg = cfg.model_copy(update={"lr": lr, "schedule": "constant"})
    optimizer = make_optimizer(model, cfg)
    scheduler = make_scheduler(optimizer, cfg, cfg.epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # stepping the schedule before the optimiser
        for _ in range(start):
            scheduler.step()
    return optimizer, scheduler
