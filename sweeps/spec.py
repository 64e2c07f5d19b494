"""A sweep file: a base experiment config plus ``sweep:`` axes, resources, storage and policy.

.. code-block:: yaml

    name: demo
    storage: ./results
    experiment: {dataset: digits, train: {epochs: 12}}   # drive-sweep prune's config
    sweep:
      method: [dense, drive, snip, imp]                  # a list = a grid axis
      sparsity: [0.5, 0.9]
      seed: [0, 1]
      warmup_epochs: [1, 2]                              # varies for DRIVE only
      train.lr: {loguniform: [0.01, 0.2]}                # sampled num_samples times
    search: {algorithm: grid, num_samples: 1}
    resources: {cpu: 1, gpu: 0.25}

The whole file is validated (every trial's experiment config included) before Ray starts;
every problem is one ``field: ...`` line (:class:`SweepError`).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drive.checked import CheckedModel
from drive.config import (
    ExperimentConfig,
    apply_overrides,
    check_override_key,
    format_validation_error,
    parse_value,
    read_yaml,
)
from drive.errors import ConfigError, InputError
from drive.method import argument_sections
from drive.schema import REPORTED_METRICS
from sweeps.loggers import DEFAULT_LOGGERS, logger_entries

SAMPLERS = ("choice", "uniform", "loguniform", "randint", "quniform")
#: How many arguments each sampler takes (Ray Tune's uniform, loguniform, randint, quniform).
SAMPLER_ARGS = {"uniform": (2,), "loguniform": (2, 3), "randint": (2,), "quniform": (3,)}
SAMPLER_FORMS = {"choice": "[a, b, ...]", "uniform": "[low, high]",
                 "loguniform": "[low, high] or [low, high, base]", "randint": "[low, high]",
                 "quniform": "[low, high, q]"}
#: Sections of an experiment config (``sweep: {train: {lr: [...]}}`` names the axis ``train.lr``).
SECTIONS = tuple(name for name, value in ExperimentConfig() if isinstance(value, (BaseModel, dict)))
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", "hdfs://", "abfs://", "file://")
#: Longest file name most file systems take (ext4, XFS, btrfs, NFS, tmpfs, APFS), in bytes.
NAME_MAX = 255


class SweepError(InputError, ValueError):
    """An invalid sweep file; ``str()`` is one line per problem."""


class _Section(CheckedModel):
    model_config = ConfigDict(extra="forbid")




class SearchSpec(_Section):
    algorithm: Literal["grid", "random", "optuna"] = "grid"
    num_samples: int = Field(1, ge=1, description="draws of the sampled axes per grid point")
    metric: str = Field("val_acc", description="what Optuna and ASHA rank trials by")
    mode: Literal["max", "min"] | None = Field(None, description="None: max for *_acc, min for *_loss")
    seed: int | None = Field(None, description="seed of the search algorithm")
    allow_test_selection: bool = Field(False, description="let search/schedulers rank by a test "
                                       "metric (the report then says the results are selected on test)")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in REPORTED_METRICS:
            raise ValueError(f"no trial reports {v!r}; use one of {', '.join(REPORTED_METRICS)}")
        return v

    @property
    def resolved_mode(self) -> str:
        return self.mode or ("min" if self.metric.endswith("loss") else "max")


class ResourcesSpec(_Section):
    cpu: float = Field(1.0, gt=0)
    gpu: float = Field(0.0, ge=0, description="fractions pack trials on a GPU (0.25 = four per GPU)")


class SchedulerSpec(_Section):
    name: Literal["fifo", "asha"] = "fifo"
    max_t: int | None = Field(None, ge=1, description="ASHA: epochs of the longest trial (rungs "
                              "below it); None = the longest trial's training epochs")
    grace_period: int = Field(1, ge=1, description="ASHA: epochs before a trial can be stopped")
    reduction_factor: float = Field(4.0, gt=1)


class SweepSpec(_Section):
    """One sweep: what to run, where results go, and how Ray runs it."""

    name: str = Field("sweep", description="the experiment folder's name under storage")
    storage: str = Field("./results", description="local folder, NFS path, s3://, gs://")
    experiment: dict[str, Any] = Field(default_factory=dict, description="the base experiment config")
    sweep: dict[str, Any] = Field(default_factory=dict, description="axes: dotted field -> values")
    search: SearchSpec = Field(default_factory=SearchSpec)
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    scheduler: SchedulerSpec = Field(default_factory=SchedulerSpec)
    max_concurrent: int | None = Field(None, ge=1)
    retries: int = Field(2, ge=0, description="times a failed trial is retried from its checkpoint")
    checkpoint_every: int = Field(2, ge=1, description="epochs between checkpoints (plus phase ends)")
    keep_checkpoints: int = Field(2, ge=1)
    reuse_actors: bool = Field(True, description="run trials in reused worker processes (less start-up)")
    report_every_s: float = Field(10.0, gt=0, description="seconds between progress tables")
    loggers: list[Any] = Field(default_factory=lambda: list(DEFAULT_LOGGERS),
                               description="tensorboard, csv, json (always), mlflow, wandb; "
                                           "{name: {options}} passes options to Ray's callback")

    @field_validator("loggers")
    @classmethod
    def _known_loggers(cls, v: list[Any]) -> list[Any]:
        logger_entries(v)
        return v

    @field_validator("name", "storage", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        """``--name 2024`` is a name, not a number."""
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("sweep", mode="before")
    @classmethod
    def _flatten_sections(cls, axes: Any) -> Any:
        """``sweep: {train: {lr: [...]}}`` is the axis ``train.lr``, as ``train.lr: [...]`` is (and
        ``sweep: {grasp: {temperature: [...]}}`` the axis ``grasp.temperature``)."""
        if not isinstance(axes, dict):
            return axes
        methods = axes.get("method") if isinstance(axes.get("method"), list) else []
        sections = set(SECTIONS) | argument_sections([m for m in methods if isinstance(m, str)])
        flat: dict[str, Any] = {}
        for key, values in axes.items():
            if key in sections and isinstance(values, dict):
                flat.update({f"{key}.{sub}": inner for sub, inner in values.items()})
            else:
                flat[str(key)] = values
        return flat

    @field_validator("sweep")
    @classmethod
    def _axes_are_lists_or_samplers(cls, axes: dict[str, Any]) -> dict[str, Any]:
        for key, values in axes.items():
            if isinstance(values, list):
                if not values:
                    raise ValueError(f"{key}: an axis needs at least one value")
            elif isinstance(values, dict):
                if len(values) != 1 or next(iter(values)) not in SAMPLERS:
                    raise ValueError(f"{key}: a sampled axis is one of {', '.join(SAMPLERS)}, "
                                     f"e.g. {{loguniform: [0.01, 0.2]}}")
                kind, args = next(iter(values.items()))
                if not isinstance(args, list) or (kind != "choice" and len(args) not in SAMPLER_ARGS[kind]):
                    raise ValueError(f"{key}: {kind} takes a list of arguments, {SAMPLER_FORMS[kind]}")
                if kind == "choice" and not args:
                    raise ValueError(f"{key}: choice needs at least one value")
                if kind != "choice" and not all(isinstance(a, (int, float)) for a in args):
                    raise ValueError(f"{key}: {kind} takes numbers, got {args}")
                if kind != "choice" and args[0] >= args[1]:
                    raise ValueError(f"{key}: {kind} needs low < high, got {args[:2]}")
                if kind == "loguniform" and args[0] <= 0:
                    raise ValueError(f"{key}: loguniform needs low > 0, got {args[:2]}")
                if kind == "quniform" and args[2] <= 0:
                    raise ValueError(f"{key}: quniform takes [low, high, q] with q > 0, got {args}")
            else:
                raise ValueError(f"{key}: must be a list of values or a sampler mapping")
        return axes

    @field_validator("name")
    @classmethod
    def _folder_name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", v) or set(v) == {"."}:
            raise ValueError(f"must be a folder name of letters, digits, '_', '-' and '.' (not "
                             f"'.' or '..'), got {v!r}")
        return v

    @model_validator(mode="after")
    def _name_fits_the_file_systems(self) -> SweepSpec:
        """The name is a folder of the storage and of Ray's session folder (Tune stages the
        experiment's files there): longer than those file systems take, it fails only once
        folders exist, blamed on the storage."""
        size, limit = len(self.name.encode()), name_max(self.storage)
        if size > limit:
            raise ValueError(f"name: is {size} characters long; a folder name can have at most "
                             f"{limit} on this file system (use a shorter --name)")
        return self

    @field_validator("storage")
    @classmethod
    def _storage_kind(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty; give a folder, NFS path, s3://... or gs://...")
        if "://" in v and not v.startswith(REMOTE_SCHEMES):
            raise ValueError(f"unsupported scheme; use a local path or {', '.join(REMOTE_SCHEMES)}")
        return v

    @property
    def grid_axes(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self.sweep.items() if isinstance(v, list)}

    @property
    def sampled_axes(self) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.sweep.items() if isinstance(v, dict)}

    @property
    def selects(self) -> bool:
        """Whether something ranks trials by ``search.metric`` (Optuna's TPE, ASHA's rungs)."""
        return self.search.algorithm == "optuna" or self.scheduler.name == "asha"

    @property
    def is_remote(self) -> bool:
        return self.storage.startswith(REMOTE_SCHEMES)

    def experiment_path(self) -> str:
        """Where Ray Tune writes this sweep: ``<storage>/<name>``."""
        if self.is_remote:
            return f"{self.storage.rstrip('/')}/{self.name}"
        return str(Path(self.storage).expanduser().resolve() / self.name)


def name_max(storage: str) -> int:
    """The longest folder name (bytes) that both the local ``storage`` (its nearest existing
    folder) and the temporary folder, where Ray stages the experiment, take."""
    places = [tempfile.gettempdir()]
    if not storage.startswith(REMOTE_SCHEMES) and storage.strip():
        folder = Path(storage).expanduser().absolute()
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        places.append(str(folder))
    limits = []
    for place in places:
        try:
            limits.append(os.pathconf(place, "PC_NAME_MAX"))
        except (OSError, ValueError, AttributeError):  # no pathconf (Windows), or not a folder
            limits.append(NAME_MAX)
    return min(NAME_MAX, *limits)


def load_spec(path: str | Path | None = None, overrides: list[str] | None = None,
              tree: dict[str, Any] | None = None, fields: dict[str, Any] | None = None) -> SweepSpec:
    """Read and validate a sweep file (or ``tree``), with ``key=value`` overrides applied
    (values parsed as YAML), then ``fields`` set as they are (``--name 2024`` stays text)."""
    overrides = list(overrides or [])
    try:
        data = dict(tree) if tree is not None else read_yaml(path, "sweep file") if path else {}
        if path and data and set(data) <= set(ExperimentConfig.model_fields):
            raise ConfigError([f"sweep file: {path} is an experiment config (no experiment:/sweep:); "
                               f"run it with `drive-sweep prune --config {path}`, or put its fields "
                               "under experiment:"])
        # sweep axes have dotted names of their own: sweep.drive.weights is the axis drive.weights
        axes = [o for o in overrides if o.startswith("sweep.")]
        data = apply_overrides(data, [o for o in overrides if o not in axes])
        if axes:
            data["sweep"] = dict(data.get("sweep") or {})
            for item in axes:
                check_override_key(item)
                key, _, value = item.partition("=")
                data["sweep"][key.strip()[len("sweep."):]] = parse_value(value)
    except ConfigError as e:
        raise SweepError(e.problems) from None
    data.update({k: v for k, v in (fields or {}).items() if v is not None})
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise SweepError(format_validation_error(e)) from None
    return spec
