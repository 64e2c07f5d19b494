"""The ``train`` section of an experiment config: optimiser, schedule and training loop settings.

Re-exported by :mod:`drive.config`, which the rest of the tool imports it from.
"""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from drive.checked import Section

#: What ``train.no_decay`` may exempt from weight decay: normalisation layers' weights and biases
#: (``bn``), every bias (``bias``).
NoDecay = Literal["bn", "bias"]
NO_DECAY: tuple[str, ...] = get_args(NoDecay)


class TrainConfig(Section):
    """The optimiser (SGD or AdamW) and schedule shared by every phase that trains."""

    epochs: int = Field(12, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1, description="training samples per step; at most the training "
                            "set's size (after data.val_fraction), so that an epoch has a full batch")
    drop_last: bool = Field(False, description="drop each epoch's last incomplete batch, so that "
                            "every step sees batch_size samples")
    eval_batch_size: int = Field(512, ge=1)
    optimizer: Literal["sgd", "adamw"] = Field("sgd", description="sgd (momentum, nesterov) or adamw "
                                               "(betas, eps; decoupled weight decay)")
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1, description="sgd only")
    nesterov: bool = Field(False, description="sgd only")
    betas: tuple[float, float] = Field((0.9, 0.999), description="adamw only: the decay rates of "
                                       "the gradient's running mean and running square, each in [0, 1)")
    eps: float = Field(1e-8, gt=0, description="adamw only: added to the denominator")
    weight_decay: float = Field(5e-4, ge=0)
    no_decay: list[NoDecay] = Field(
        default_factory=list, description="parameters without weight decay: bn (normalisation "
        "layers' weights and biases), bias (every bias); empty = decay on every parameter")
    schedule: Literal["step", "cosine", "constant"] = "cosine"
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75],
                                    description="step schedule: fractions of the epochs")
    gamma: float = Field(0.1, gt=0, le=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    bf16: bool = Field(True, description="bf16 autocast on CUDA (ignored on CPU)")
    channels_last: bool = Field(True, description="channels_last memory format for models and batches (CUDA and CPU)")
    compile: bool | Literal["auto"] = Field("auto", description="torch.compile the model's training "
                                            "forward and backward; auto = on CUDA only (on CPU the "
                                            "compile time did not pay for itself, docs/benchmarks.md)")
    cuda_graphs: bool = Field(True, description="with compile on CUDA: replay the step's kernels as "
                              "CUDA graphs (torch.compile mode reduce-overhead)")
    eval_every: int = Field(1, ge=1, description="evaluate on the test set every N epochs (and last)")

    @field_validator("milestones")
    @classmethod
    def _milestones_in_range(cls, v: list[float]) -> list[float]:
        if any(not 0 < m < 1 for m in v) or v != sorted(v):
            raise ValueError("must be increasing fractions in (0, 1)")
        return v

    @field_validator("betas", mode="before")
    @classmethod
    def _betas_are_two_rates(cls, v: object) -> object:
        # checked before pydantic's coercion, which would read YAML's booleans as 1.0 and 0.0
        if not isinstance(v, (list, tuple)) or len(v) != 2 or not all(
                isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in v):
            raise ValueError(f"must be two numbers in [0, 1), e.g. [0.9, 0.999], got {v!r}")
        return v

    @field_validator("no_decay")
    @classmethod
    def _no_decay_once_each(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"names a group twice ({', '.join(v)}); allowed: {', '.join(NO_DECAY)}")
        return v
