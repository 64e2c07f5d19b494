"""What a pruned network really costs: its forward pass timed dense-masked against a real sparse
execution (:mod:`drive.inference`), next to what its masks buy in theory (:mod:`drive.flops`);
``drive-sweep bench-model`` prints it.

The network comes from a checkpoint (``--checkpoint`` of ``prune``, or a sweep trial's
``checkpoint_*/state.pt``: its exact weights and masks) or from a record (``prune --out`` or a
trial's ``metrics.jsonl``: the model built from its config with random masks of the recorded
per-layer densities, seeded; a sparse kernel's speed depends on how many weights a layer keeps,
hardly on which, so the timing stands for the trained network's).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from drive.config import build_config
from drive.errors import CheckpointError
from drive.flops import count_costs
from drive.inference import sparse_execution, time_inference
from drive.masks import keep_count
from drive.parts import Parts
from drive.record import read_record
from drive.state import load_state


@dataclass
class Pruned:
    """A pruned network to measure: its parts (model with masks applied) and where it came from."""

    parts: Parts
    source: str  # "checkpoint" (its own weights and masks) or "record" (random masks)
    cfg: Any  # its ExperimentConfig


def load_pruned(path: str | Path, device: str = "cpu", seed: int = 0) -> Pruned:
    """The network of a checkpoint or a record (see the module docstring).

    Raises:
        CheckpointError: a file that is neither (one line).
    """
    path = Path(path)
    record = None
    try:
        record = read_record(path)
    except (OSError, UnicodeDecodeError, ValueError):
        record = None
    if record is not None:
        cfg = build_config({**record.config, "device": device})
        parts = Parts.build(cfg)
        densities = record.metrics().get("layer_density") or {}
        gen = torch.Generator().manual_seed(seed)
        keep = {}
        for name, mask in parts.masks.keep.items():
            k = keep_count(densities.get(name, 1.0), mask.numel())
            flat = torch.zeros(mask.numel(), dtype=torch.bool)
            flat[torch.randperm(mask.numel(), generator=gen)[:k]] = True
            keep[name] = flat.view_as(mask).to(mask.device)
        parts.masks.keep = keep
        parts.masks.apply()
        return Pruned(parts, "record", cfg)
    state = load_state(path)  # a CheckpointError (one line) when it is no checkpoint either
    try:
        cfg = build_config({**state["config"], "device": device})
    except Exception as e:  # noqa: BLE001 - a state whose config no longer validates
        raise CheckpointError(f"checkpoint: {path} holds a config this version cannot build ({e})") from None
    parts = Parts.build(cfg)
    parts.model.load_state_dict(state["model"])
    parts.masks.load_state_dict(state["masks"])
    return Pruned(parts, "checkpoint", cfg)


def measure(path: str | Path, batches: tuple[int, ...] = (1, 256), repeat: int = 5,
            device: str = "cpu", round_seconds: float = 0.1) -> dict[str, Any]:
    """The pruned network of ``path`` timed dense-masked vs sparse at ``batches``, with its
    theoretical FLOPs and bytes: a JSON-ready dict."""
    pruned = load_pruned(path, device)
    parts, cfg = pruned.parts, pruned.cfg
    shape = tuple(parts.data.sample_shape)
    sparse = sparse_execution(parts.model, parts.masks.keep)
    # the dense model runs as it trains: channels_last images (the faster layout on CPU too)
    layout = torch.channels_last if cfg.train.channels_last and len(shape) == 3 else torch.contiguous_format
    rows = time_inference(parts.model, sparse, shape, batches, repeat=repeat,
                          round_seconds=round_seconds, device=parts.device, memory_format=layout)
    theory = count_costs(parts.model, shape, parts.masks.keep).to_dict()
    return {"path": str(path), "source": pruned.source, "method": cfg.method,
            "sparsity": cfg.sparsity, "density": parts.masks.density(), "device": str(parts.device),
            "formats": getattr(sparse, "sparse_formats", {}), "theory": theory,
            "timings": [{k: v for k, v in r.items() if k != "seconds"} for r in rows],
            "torch_threads": torch.get_num_threads()}


def format_measurement(m: dict[str, Any]) -> str:
    """A short table of :func:`measure`'s result."""
    theory = m["theory"]
    formats: dict[str, int] = {}
    for kind in m["formats"].values():
        formats[kind] = formats.get(kind, 0) + 1
    lines = [f"{m['method']} at sparsity {m['sparsity']:g} (density {m['density']:.4f}) from a "
             f"{m['source']}{' (random masks of its layer densities)' if m['source'] == 'record' else ''}, "
             f"{m['device']}, {m['torch_threads']} torch thread(s)",
             f"theory: {theory['flops'] / 1e6:.4g} of {theory['flops_dense'] / 1e6:.4g} MFLOPs per "
             f"sample ({100 * theory['flops_fraction']:.3g}%); weights {theory['bytes_dense'] / 1e3:,.1f} kB "
             f"dense, {theory['bytes_csr'] / 1e3:,.1f} kB CSR, {theory['bytes_bitmap'] / 1e3:,.1f} kB bitmap",
             "sparse execution: " + (", ".join(f"{k} x{n}" for k, n in formats.items()) or "none"),
             f"{'batch':>6} {'dense-masked ms':>16} {'sparse ms':>10} {'sparse/dense':>13}"]
    for r in m["timings"]:
        lines.append(f"{r['batch']:>6} {1e3 * r['dense_s']:>16.4g} {1e3 * r['sparse_s']:>10.4g} "
                     f"{r['ratio']:>13.3g}")
    lines.append("sparse/dense < 1: the sparse execution is faster; theory's FLOPs are not time "
                 "(docs/benchmarks.md, 'What sparsity buys')")
    return "\n".join(lines)
