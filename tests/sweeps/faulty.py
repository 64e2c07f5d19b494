"""A model that fails mid-training, for sweeps with an errored trial (``model:
tests.sweeps.faulty:model``). Building it works, so it passes every check before Ray starts."""

from torch import nn

from drive.errors import ConfigError
from drive.models import build_model


class Faulty(nn.Module):
    """digits_cnn that raises after ``fail_after`` training batches (as a trial that runs out of
    memory in its second epoch would)."""

    def __init__(self, inner: nn.Module, fail_after: int):
        super().__init__()
        self.inner = inner
        self.fail_after = fail_after
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls > self.fail_after:
                raise ConfigError([f"model_args.fail_after: gave up after {self.fail_after} batches",
                                   "a second line of the same error"])
        return self.inner(x)


def model(num_classes: int, in_channels: int, image_size: int, fail_after: int = 12,
          width: float = 1.0) -> nn.Module:
    return Faulty(build_model("digits_cnn", num_classes, in_channels, image_size, width=width), fail_after)


def broken_model(num_classes: int, in_channels: int, image_size: int) -> nn.Module:
    """A user's model factory that fails (say, a weights file it cannot find)."""
    raise RuntimeError("pretrained weights not found in ~/.cache")


def broken_data(cfg):
    """A user's data set factory that fails."""
    raise OSError("the data server did not answer")
