"""Magnitude pruning after training (Han et al. 2015), then fine-tuning for ``finetune.epochs`` at
a constant ``finetune.lr``: the "prune after training" reference."""

from drive.method import Method
from drive.methods.magnitude import score

METHOD = Method("magnitude_after", score, plan="after_training", label="magnitude after training",
                color="#332288", marker="h", linestyle="--",
                reference="Han et al. 2015; Renda et al. 2020", order=120)
