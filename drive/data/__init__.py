"""Classification data sets (images and 1-D signals) and their loaders.

Built-in data sets (see :data:`DATASETS`): ``digits`` (scikit-learn's, the embedded default),
``mnist1d`` (1-D signals, generated), ``synthetic``, ``cifar10``, ``cifar100``, ``tinyimagenet``
(in memory, served by a device-resident loader that augments on the device) and ``imagenet``
(from files, served by a DataLoader with workers). A data set named ``package.module:factory``
is ``factory(cfg)``, returning :class:`ImageData` or :class:`FolderData`; its options are
``cfg.args`` (:mod:`drive.data.args`).

    data = load_dataset("cifar10", cfg.data)
    train_loader, test_loader = make_loaders(data, cfg.data, 128, 512, device, seed)
    train_loader.set_epoch(epoch)
    for x, y in train_loader: ...
"""

from drive.data import cifar, digits, imagenet, mnist1d, synthetic, tinyimagenet  # noqa: F401  (registration)
from drive.data.api import check_epoch_batches, load_dataset, make_loaders, make_val_loader
from drive.data.base import DATASETS, FolderData, ImageData
from drive.data.folder_loader import FolderLoader
from drive.data.loader import ImageLoader
from drive.data.prepare import prepare_dataset

__all__ = ["DATASETS", "FolderData", "FolderLoader", "ImageData", "ImageLoader",
           "check_epoch_batches", "load_dataset", "make_loaders", "make_val_loader",
           "prepare_dataset"]
