"""The dense baseline: no pruning (its ``sparsity`` is 0)."""

from drive.method import Method

METHOD = Method("dense", plan="dense", label="dense", color="#000000", marker="", linestyle="--",
                order=0)
