"""What a pruning method is: a :class:`Method` with its own typed hyperparameters, and the
registry that finds one by name or import path.

A method is one module (``drive/methods/<name>.py`` for the built-ins, any module for a user's):
its hyperparameters as a :class:`MethodArgs` model, its score, its stage plan, its default number
of pruning iterations T, what data its score needs, its own checks of a config, its extra
metrics, and its display name, colour, marker and line style. The experiment config holds
generic sections plus the method's arguments in a section named after it
(``grasp: {temperature: 100}``), checked by the method's own model; a sweep axis on one of
them (``grasp.temperature``) varies for that method alone. Nothing else in the tool names a
method. A user's method is named by import path and is equal to a built-in::

    # mypkg/methods.py
    from pydantic import Field
    from drive.method import Method, MethodArgs

    class PowerArgs(MethodArgs):
        p: float = Field(2.0, gt=0, description="the exponent")

    def score(ctx):  # ctx: drive.scores.ScoreContext; higher = keep
        return {n: w.detach().abs() ** ctx.args.p for n, w in ctx.weights.items()}

    POWER = Method("power", score=score, args=PowerArgs, label="|w|^p")

``drive-sweep prune --method mypkg.methods:POWER --set power.p=3``.

This module imports neither torch nor the method modules: a built-in is imported by its path
(:data:`BUILTINS`) the first time it is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
import importlib.util
import pkgutil
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

from pydantic import ConfigDict

from drive.checked import CheckedModel
from drive.errors import RegistryError
from drive.registry import Registry

#: What a method's hooks are given. The config (:class:`drive.config.ExperimentConfig`) and the
#: scoring context (:class:`drive.scores.ScoreContext`) are defined in layers above this one
#: (the config imports this module, the scores need torch), so they are named, not imported.
Config = Any
Context = Any
Scores = dict[str, Any]

#: How a method's experiment runs (:mod:`drive.plan`): ``dense`` trains without pruning;
#: ``at_init`` prunes at initialisation, then trains; ``after_warmup`` trains dense for
#: ``warmup_epochs``, prunes, trains on; ``imp`` runs IMP's trunk and branches (:mod:`drive.imp`);
#: ``after_training`` trains dense fully, prunes, fine-tunes.
Plan = Literal["dense", "at_init", "after_warmup", "imp", "after_training"]
PLANS: tuple[str, ...] = Plan.__args__  # type: ignore[attr-defined]

#: What ``prune_time_s`` / ``prune_samples`` count for each plan (docs and reports).
COSTS: dict[str, str] = {
    "dense": "nothing (no pruning)",
    "at_init": "the scoring passes of the T iterations",
    "after_warmup": "the dense warm-up epochs plus the scoring passes",
    "imp": "every training round of the trunk up to the level, plus its pruning",
    "after_training": "the whole dense training plus the scoring passes",
}

#: Generic config fields that matter to the methods of a plan alone (a trailing dot: the whole
#: section): a sweep varies them for those methods only.
PLAN_FIELDS: dict[str, tuple[str, ...]] = {
    "after_warmup": ("warmup_epochs", "prune.rewind"),
    "after_training": ("finetune.",),
}

def _builtin_names() -> tuple[str, ...]:
    """The modules of the package ``drive.methods``, found on disk, not imported: each one's
    ``METHOD`` is a built-in method (adding one is adding its module)."""
    found = importlib.util.find_spec("drive.methods")
    places = found.submodule_search_locations if found is not None else None
    return tuple(sorted(m.name for m in pkgutil.iter_modules(places or []) if not m.name.startswith("_")))


#: The built-in methods, each the ``METHOD`` of its module ``drive.methods.<name>``.
BUILTINS: tuple[str, ...] = _builtin_names()
#: Where a method without an ``order`` of its own (a user's) comes in tables and figures.
LAST = 1000


class MethodArgs(CheckedModel):
    """Base of a method's hyperparameters: every field has a default, unknown keys are errors,
    numbers are numbers (no booleans, no NaN or infinity). A field's ``title`` is how table and
    legend labels name it (``Field(..., title="w")``; by default its name)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class NoArgs(MethodArgs):
    """The arguments of a method that has none."""


@dataclass(frozen=True)
class Method:
    """One pruning method (see the module docstring).

    Attributes:
        name: the config name (``method: name``); a user's method is known by its import path.
        score: ``score(ctx: ScoreContext) -> {layer: scores}``, higher = keep (``ctx.args`` holds
            the method's arguments); None for methods that do not score (``dense``; IMP prunes by
            magnitude itself).
        args: the model of its hyperparameters, the config section named :attr:`section`.
        plan: the stage plan, see :data:`Plan`.
        iterations: the default number of pruning iterations T.
        data: whether the score needs training batches.
        batches: the number of scoring batches it needs at least, given the config.
        revives: whether a weight pruned at one iteration may come back at a later one (the score
            then sees every weight with its value before pruning, ``ctx.dense``).
        fresh_batches: whether each of the T iterations scores new batches (else the same).
        layer_densities: whether its score sets each layer's share itself (ERK), so that only a
            global ranking gives its result (``prune.scope: layerwise`` is refused).
        varies: generic config fields (dotted; a trailing dot is a whole section) that only this
            method uses, besides its own section and its plan's fields (:data:`PLAN_FIELDS`).
        check: ``check(cfg)`` raises ValueError (``field: ...``) for a config it cannot run.
        rounds: ``rounds(cfg)``: the pruning iterations its result reports when they are not T
            (IMP: its rounds). (Extra results of a score go into ``ctx.results``, recorded as
            ``method_metrics``.)
        label, color, marker, linestyle: how tables and figures show it.
        order: its place in tables and figures (the built-ins' 0-120; a user's after them).
        reference: the paper it comes from.
        section: the config section of its arguments; by default its name (a user's method
            keeps the name it was declared with, not its import path).
    """

    name: str
    score: Callable[[Context], Scores] | None = None
    args: type[MethodArgs] = NoArgs
    plan: Plan = "at_init"
    iterations: int = 1
    data: bool = False
    batches: Callable[[Config], int] | None = None
    revives: bool = False
    fresh_batches: bool = False
    layer_densities: bool = False
    varies: tuple[str, ...] = ()
    check: Callable[[Config], None] | None = None
    rounds: Callable[[Config], int] | None = None
    label: str = ""
    color: str = "#332288"
    marker: str = "h"
    linestyle: str = "-"
    order: int = LAST
    reference: str = ""
    section: str = field(default="")

    def __post_init__(self) -> None:
        if self.plan not in PLANS:
            raise ValueError(f"method {self.name!r}: plan must be one of {', '.join(PLANS)}, got {self.plan!r}")
        if not (isinstance(self.args, type) and issubclass(self.args, MethodArgs)):
            raise ValueError(f"method {self.name!r}: args must be a drive.method.MethodArgs model")
        if not self.section:
            object.__setattr__(self, "section", self.name)

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

    @property
    def has_args(self) -> bool:
        return bool(self.args.model_fields)

    def check_scope(self, scope: str) -> None:
        """Raise ValueError (one line) when ``prune.scope`` cannot give this method's result."""
        if self.layer_densities and scope != "global":
            raise ValueError(f"prune.scope: must be global for {self.name}, which sets every "
                             "layer's density itself (layerwise would give all layers the same)")

    def uses(self, field: str) -> bool:
        """Whether the generic config ``field`` is one that this method (of those that declare
        it) uses: one of :attr:`varies` or of its plan's fields."""
        return any(field == f or (f.endswith(".") and field.startswith(f))
                   for f in (*self.varies, *PLAN_FIELDS.get(self.plan, ())))

    def reported_iterations(self, cfg: Config) -> int:
        """The pruning iterations its result reports: T, its :attr:`rounds`, or 0 (dense)."""
        if not self.prunes:
            return 0
        return self.rounds(cfg) if self.rounds else cfg.iterations

    def info(self) -> dict[str, Any]:
        """What a result record says of the method, so that reports need not import it: its
        label, plan, style, default T, position among the built-ins and default arguments."""
        return {"label": self.display, "plan": self.plan, "color": self.color,
                "marker": self.marker, "linestyle": self.linestyle, "order": self.order,
                "iterations": self.iterations, "section": self.section,
                "reference": self.reference, "cost": self.cost,
                "defaults": self.args().model_dump(mode="json"),
                "short": {name: f.title or name for name, f in self.args.model_fields.items()}}


def _is_method(obj: object) -> bool:
    return isinstance(obj, Method)


METHODS: Registry[Method] = Registry("method", accepts=_is_method, path_hint="package.module:NAME",
                                     builtins={n: f"drive.methods.{n}:METHOD" for n in BUILTINS})


@lru_cache(maxsize=None)
def get_method(name: str) -> Method:
    """The method called ``name`` (a registered name or ``package.module:NAME``).

    Raises:
        RegistryError: one line naming the allowed values.
    """
    method = METHODS.get(name)
    if ":" in name and method.name != name:
        # an imported method is known by its import path everywhere (configs, results); its
        # arguments keep the section of the name it was declared with
        method = replace(method, name=name, section=method.section)
    return method


def _known(among: Iterable[str]) -> list[Method]:
    methods = []
    for name in dict.fromkeys([*BUILTINS, *among]):
        try:
            methods.append(get_method(name))
        except RegistryError:  # an unknown method: validation reports it
            continue
    return methods


def argument_sections(among: Iterable[str] = ()) -> set[str]:
    """The config sections that hold a method's arguments: the built-ins' and those of the
    methods ``among``."""
    return {m.section for m in _known(among) if m.has_args}


def applies(field: str, method: str, among: Iterable[str] = ()) -> bool:
    """Whether the config ``field`` matters to ``method`` (``among``: the other methods of the
    sweep): a method argument (``grasp.temperature``) to its method alone, a generic field some
    methods use alone (``warmup_epochs``, ``prune_iterations``, ``finetune.*``) to those alone,
    ``sparsity`` to every method that prunes, any other field to all."""
    try:
        spec = get_method(method)
    except RegistryError:
        return True
    if field == "sparsity":
        return spec.prunes
    head = field.split(".", 1)[0]
    if "." in field and head in argument_sections([*among, method]):
        return head == spec.section and spec.has_args
    owners = [m for m in _known([*among, method]) if m.uses(field)]
    return not owners or spec.uses(field)


def in_order() -> list[str]:
    """The built-in methods in the order of every table and figure (imports each module)."""
    return sorted(BUILTINS, key=lambda name: (get_method(name).order, name))


__all__ = ["BUILTINS", "COSTS", "LAST", "in_order", "METHODS", "Method", "MethodArgs", "NoArgs", "PLANS", "PLAN_FIELDS",
           "Plan", "RegistryError", "applies", "argument_sections", "get_method"]
