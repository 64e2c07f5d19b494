"""Class-balanced scoring batches: N training samples of every class, as GraSP samples them."""

from __future__ import annotations

import torch
from torch.utils.data import Subset

from drive.data.base import AnyData, ImageData
from drive.errors import DataError


def train_labels(data: AnyData) -> torch.Tensor:
    """The labels of the training set, without loading its images."""
    if isinstance(data, ImageData):
        return data.train_labels
    dataset, index = data.train, None
    while isinstance(dataset, Subset):  # capped sets
        index = torch.as_tensor(dataset.indices) if index is None else torch.as_tensor(dataset.indices)[index]
        dataset = dataset.dataset
    targets = getattr(dataset, "targets", None)
    if targets is None:
        raise DataError("prune.balanced_batches: the training set does not list its labels "
                        "(a `targets` attribute); leave balanced_batches unset")
    labels = torch.as_tensor(targets)
    return labels if index is None else labels[index]


def class_balanced_batches(data: AnyData, per_class: int, batches: int, seed: int) -> list[torch.Tensor]:
    """``batches`` disjoint index sets into the training set, each with ``per_class`` samples of
    every class, drawn at random (seeded by ``seed``)."""
    labels = train_labels(data)
    generator = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(data.num_classes):
        members = (labels == c).nonzero().squeeze(1)
        if len(members) < per_class * batches:
            raise DataError(f"prune.balanced_batches: class {c} has {len(members)} training samples, "
                            f"fewer than balanced_batches x score_batches = {per_class * batches}")
        picks.append(members[torch.randperm(len(members), generator=generator)[:per_class * batches]])
    chosen = torch.stack(picks)  # (classes, per_class * batches)
    return [chosen[:, b * per_class:(b + 1) * per_class].reshape(-1) for b in range(batches)]
