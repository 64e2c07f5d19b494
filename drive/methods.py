"""The method registry: everything the tool knows about a pruning method, in one entry.

A :class:`Method` holds a method's score, its default number of pruning iterations T, whether
its score needs training data, its stage plan, the config fields that only it uses (so a sweep
varies them for it alone), how its pruning cost is counted, and its display name, colour,
marker and line style. Every module that needs method knowledge asks :data:`METHODS`; adding a
method is one entry here (and its tests).

A user's own method is a :class:`Method` named by import path in a config,
``method: package.module:NAME``, and is used in ``drive-sweep prune``, sweeps and reports like a
built-in one::

    # mypkg/methods.py
    from drive.methods import Method
    def score(ctx):                      # higher = keep; ctx is a drive.scores.ScoreContext
        return {n: w.detach().abs() ** 2 for n, w in ctx.weights.items()}
    SQUARED = Method("squared", score=score, label="|w|^2")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drive import baselines, scores
from drive.registry import Registry, RegistryError

#: How a method's experiment runs (see :mod:`drive.plan`):
#: ``dense`` trains without pruning; ``at_init`` prunes at initialisation, then trains;
#: ``after_warmup`` trains dense for ``warmup_epochs``, prunes, trains on; ``imp`` runs IMP's
#: trunk and branches; ``after_training`` trains dense fully, prunes, fine-tunes.
Plan = Literal["dense", "at_init", "after_warmup", "imp", "after_training"]

#: What ``prune_time_s`` / ``prune_samples`` count for each plan (docs and reports).
COSTS: dict[str, str] = {
    "dense": "nothing (no pruning)",
    "at_init": "the scoring passes of the T iterations",
    "after_warmup": "the dense warm-up epochs plus the scoring passes",
    "imp": "every training round of the trunk up to the level, plus its pruning",
    "after_training": "the whole dense training plus the scoring passes",
}


@dataclass(frozen=True)
class Method:
    """One pruning method.

    Attributes:
        name: the config name (``method: name``).
        score: ``score(ctx: ScoreContext) -> {layer: scores}``, higher = keep; None for methods
            that do not score (``dense``; IMP prunes by magnitude itself).
        plan: the stage plan, see :data:`Plan`.
        iterations: the default number of pruning iterations T.
        data: whether the score needs training batches.
        revives: whether a weight pruned at one iteration may come back at a later one (the
            score then sees every weight with its value before pruning, ``ctx.dense``).
        fresh_batches: whether each of the T iterations scores new batches (else the same).
        layer_densities: whether its score sets each layer's share itself (ERK), so that only
            a global ranking gives its result (``prune.scope: layerwise`` is refused).
        batches: the number of scoring batches it needs at least, given the config.
        axes: config fields (dotted; a trailing dot means the whole section) that only this
            method uses: a sweep varies them for it alone.
        label, color, marker, linestyle: how tables and figures show it.
        reference: the paper it comes from.
    """

    name: str
    score: Callable[[scores.ScoreContext], scores.Scores] | None = None
    plan: Plan = "at_init"
    iterations: int = 1
    data: bool = False
    revives: bool = False
    fresh_batches: bool = False
    layer_densities: bool = False
    batches: Callable[[object], int] | None = None
    axes: tuple[str, ...] = ()
    label: str = ""
    color: str = "#332288"
    marker: str = "h"
    linestyle: str = "-"
    reference: str = ""

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def cost(self) -> str:
        """What its pruning cost counts."""
        return COSTS[self.plan]

    @property
    def prunes(self) -> bool:
        return self.plan != "dense"

    def check_scope(self, scope: str) -> None:
        """Raise ValueError (one line) when ``prune.scope`` cannot give this method's result."""
        if self.layer_densities and scope != "global":
            raise ValueError(f"prune.scope: must be global for {self.name}, which sets every "
                             "layer's density itself (layerwise would give all layers the same)")


def _is_method(obj: object) -> bool:
    return isinstance(obj, Method)


METHODS: Registry[Method] = Registry("method", accepts=_is_method, path_hint="package.module:NAME")

# Okabe-Ito colours (colour-blind safe); random in grey, dense in black.
for _method in (
    Method("dense", plan="dense", label="dense", color="#000000", marker="", linestyle="--"),
    Method("imp", plan="imp", axes=("imp.",), label="IMP", color="#0072B2", marker="s",
           reference="Frankle & Carbin 2019; Frankle et al. 2020"),
    Method("drive", scores.drive, "after_warmup", iterations=10, data=True,
           axes=("warmup_epochs", "prune_iterations", "drive.", "prune.rewind"), label="DRIVE",
           color="#D55E00", marker="o", reference="Saikumar & Varghese 2024"),
    Method("snip", scores.snip, data=True, label="SNIP", color="#009E73", marker="^",
           linestyle="--", reference="Lee et al. 2019"),
    Method("grasp", scores.grasp, data=True, label="GraSP", color="#CC79A7", marker="v",
           linestyle="-.", reference="Wang et al. 2020"),
    Method("synflow", scores.synflow, iterations=100, label="SynFlow", color="#E69F00",
           marker="D", linestyle=":", reference="Tanaka et al. 2020"),
    Method("magnitude", scores.magnitude, label="magnitude", color="#56B4E9", marker="P",
           linestyle="--"),
    Method("random", scores.random, label="random", color="#7F7F7F", marker="X", linestyle=":"),
    Method("erk", baselines.erk, layer_densities=True, label="random (ERK)", color="#999933",
           marker="x", linestyle=":", reference="Evci et al. 2020"),
    Method("random_uniform", baselines.random_uniform, label="random (uniform)", color="#BBBBBB",
           marker="+", linestyle=":"),
    Method("force", baselines.force, iterations=60, data=True, revives=True, fresh_batches=True,
           axes=("prune_iterations",), label="FORCE", color="#882255", marker="*", linestyle="-.",
           reference="de Jorge et al. 2021"),
    Method("prospr", baselines.prospr, data=True, batches=lambda cfg: cfg.prospr.steps + 1,
           axes=("prospr.",), label="ProsPr", color="#117733", marker="p",
           reference="Alizadeh et al. 2022"),
    Method("magnitude_after", scores.magnitude, "after_training", axes=("finetune.",),
           label="magnitude after training", color="#332288", marker="h", linestyle="--",
           reference="Han et al. 2015; Renda et al. 2020"),
):
    METHODS.register(_method.name)(_method)


def get_method(name: str) -> Method:
    """The method called ``name`` (a registered name or ``package.module:NAME``).

    Raises:
        RegistryError: one line naming the allowed values.
    """
    method = METHODS.get(name)
    if ":" in name and method.name != name:
        # an imported method is known by its import path everywhere (configs, results)
        from dataclasses import replace

        method = replace(method, name=name)
    return method


def owner_of(field: str) -> list[str]:
    """The registered methods that own the config ``field`` (one of their ``axes``)."""
    return [m for m in METHODS if _owns(METHODS.get(m), field)]


def _owns(method: Method, field: str) -> bool:
    return any(field == a or (a.endswith(".") and field.startswith(a)) for a in method.axes)


def applies(field: str, method: str) -> bool:
    """Whether the config ``field`` matters to ``method``: fields some methods own matter to
    those alone, ``sparsity`` to every method that prunes, any other field to all."""
    try:
        spec = get_method(method)
    except RegistryError:
        return True
    if field == "sparsity":
        return spec.prunes
    owners = owner_of(field)
    return not owners or _owns(spec, field)


__all__ = ["COSTS", "METHODS", "Method", "Plan", "RegistryError", "applies", "get_method", "owner_of"]
