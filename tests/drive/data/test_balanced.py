"""Class-balanced scoring batches (GraSP's sampling)."""

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from drive.config import DataConfig
from drive.data import FolderData, load_dataset
from drive.data.balanced import class_balanced_batches, train_labels
from drive.errors import DataError


def test_every_batch_holds_n_samples_of_every_class_disjoint_and_seeded():
    data = load_dataset("digits", DataConfig())
    batches = class_balanced_batches(data, per_class=3, batches=2, seed=7)
    assert len(batches) == 2
    for index in batches:
        counts = torch.bincount(data.train_labels[index], minlength=data.num_classes)
        assert counts.tolist() == [3] * data.num_classes
    assert not set(batches[0].tolist()) & set(batches[1].tolist())
    again = class_balanced_batches(data, 3, 2, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    assert not torch.equal(class_balanced_batches(data, 3, 2, seed=8)[0], batches[0])


def test_too_few_samples_of_a_class_is_one_line():
    data = load_dataset("digits", DataConfig(train_size=40))
    with pytest.raises(DataError, match=r"prune.balanced_batches: class \d+ has \d+ training samples"):
        class_balanced_batches(data, per_class=10, batches=1, seed=0)


class Targets(TensorDataset):
    def __init__(self, labels):
        super().__init__(torch.zeros(len(labels), 1, 4, 4, dtype=torch.uint8), torch.tensor(labels))
        self.targets = list(labels)


def test_labels_of_a_folder_set_come_from_its_targets_through_subsets():
    full = Targets([0, 1, 2, 0, 1, 2, 0, 1])
    data = FolderData(Subset(Subset(full, [1, 2, 4, 5, 6]), [0, 3, 4]), full, num_classes=3,
                      image_size=4, mean=(0.5,), std=(0.5,), in_channels=1)
    assert train_labels(data).tolist() == [1, 2, 0]
    bare = FolderData(TensorDataset(torch.zeros(2, 1, 4, 4)), full, 3, 4, (0.5,), (0.5,), 1)
    with pytest.raises(DataError, match="balanced_batches"):
        train_labels(bare)
