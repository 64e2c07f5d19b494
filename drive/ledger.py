"""The cost accounting of an experiment (DESIGN.md, "Timing and cost"): compute time spent
pruning, training and evaluating, the sample passes spent pruning, and what the current mask
cost when it was made (IMP's levels and branches report that).

A training epoch counts as pruning when its stage is part of the pruning phase (DRIVE's warm-up,
a pre-training, IMP's trunk rounds); a method's scoring always does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ledger:
    """Seconds (``timers``: prune, train, eval, wall) and pruning sample passes, in total and in
    the current stage."""

    timers: dict[str, float] = field(default_factory=lambda: {"prune": 0.0, "train": 0.0,
                                                              "eval": 0.0, "wall": 0.0})
    prune_samples: int = 0
    mask_time: tuple[float, int] = (0.0, 0)  # prune seconds and samples when the mask was made
    stage_time: float = 0.0  # training seconds in the current stage
    stage_best: float | None = None  # best test accuracy in the current stage

    def trained(self, seconds: float, samples: int, pruning: bool) -> None:
        """A training epoch of ``samples`` sample passes (part of pruning, or the training)."""
        self.timers["prune" if pruning else "train"] += seconds
        self.stage_time += seconds
        if pruning:
            self.prune_samples += samples

    def evaluated(self, seconds: float, accuracy: float | None = None) -> None:
        """A test (with ``accuracy``) or validation pass."""
        self.timers["eval"] += seconds
        if accuracy is not None:
            self.stage_best = max(self.stage_best or 0.0, accuracy)

    def pruned(self, seconds: float, samples: int) -> None:
        """A mask was made: its scoring's time and sample passes."""
        self.timers["prune"] += seconds
        self.prune_samples += samples
        self.mask_time = (self.timers["prune"], self.prune_samples)

    def new_stage(self) -> None:
        self.stage_time, self.stage_best = 0.0, None

    def running(self) -> dict[str, Any]:
        """The totals every epoch line carries."""
        return {"prune_time_s": self.timers["prune"], "prune_samples": self.prune_samples,
                "train_time_s": self.timers["train"]}

    def pruning_cost(self) -> dict[str, Any]:
        """What the pruning so far cost (the trunk's, kept aside while an IMP branch runs)."""
        return {"prune_time": self.timers["prune"], "prune_samples": self.prune_samples,
                "mask_time": list(self.mask_time)}

    def restore_pruning_cost(self, cost: dict[str, Any]) -> None:
        self.timers["prune"], self.prune_samples = cost["prune_time"], cost["prune_samples"]
        self.mask_time = tuple(cost["mask_time"])

    def state_dict(self) -> dict[str, Any]:
        return {"timers": dict(self.timers), "prune_samples": self.prune_samples,
                "mask_time": list(self.mask_time), "stage_best": self.stage_best,
                "stage_time": self.stage_time}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.timers, self.prune_samples = dict(state["timers"]), state["prune_samples"]
        self.mask_time = tuple(state["mask_time"])
        self.stage_best, self.stage_time = state["stage_best"], state["stage_time"]
