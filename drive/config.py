"""Typed, validated configuration of one pruning experiment.

A config is a pydantic model with defaults for everything, so ``ExperimentConfig()`` is the
embedded default (DRIVE on scikit-learn's digits at 90% sparsity). It holds generic sections
(``data``, ``train``, ``prune``, ``finetune``) and the arguments of its method in a section named
after the method (``drive: {weights: [1, 1, 1]}``), checked by the method's own model
(:class:`drive.method.MethodArgs`) and available as ``config.args``. The sections of the other
built-in methods may be given too (a sweep's base config serves every method): they are checked
and left out of the resolved config. Configs come from YAML files (loaded with
``yaml.safe_load``'s loader), from dicts and from ``key=value`` overrides with dotted names.
Every validation problem becomes one line ``field: what is allowed`` (see :class:`ConfigError`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from drive import yaml_files
from drive.checked import Section
from drive.errors import ConfigError, RegistryError
from drive.method import BUILTINS, Method, MethodArgs, get_method
from drive.train_config import TrainConfig

#: Largest seed: numpy's and scikit-learn's seeds are 32-bit.
MAX_SEED = 2**32 - 1
#: Dense warm-up epochs of the methods pruned after a warm-up, unless set (:func:`default_warmup`).
DEFAULT_WARMUP = 2


class DataConfig(Section):
    """Where the data set lives and how it is loaded and augmented."""

    root: str = Field("./data", description="folder holding (or receiving) the data set files; "
                      "$VARIABLES are expanded where the config is built (on each node in a sweep)")
    download: bool = Field(False, description="download with torchvision's code when missing")
    verify: bool = Field(True, description="check files against the official archive's md5 when loading")
    args: dict[str, Any] = Field(default_factory=dict,
                                 description="options of the data set's factory (e.g. mnist1d's num_samples)")
    split_seed: int = Field(0, ge=0, le=MAX_SEED, description="seed of the train/test split (digits)")
    test_fraction: float = Field(0.2, gt=0, lt=1, description="test share of the split (digits)")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="share of the training set held out "
                                "for validation (stratified, seeded by split_seed); 0 = none")
    augment: bool | None = Field(None, description="random crop + flip; None = the data set's default")
    crop_padding: int | None = Field(None, ge=0, description="padding of the random crop; None = default")
    pad_mode: Literal["reflect", "zeros"] = "reflect"
    flip: bool | None = Field(None, description="random horizontal flip; None = the data set's default")
    on_device: bool = Field(True, description="keep small image sets on the training device")
    num_workers: int = Field(4, ge=0, description="DataLoader workers for folder data sets (imagenet)")
    decode: Literal["auto", "pil", "cpu", "device"] = Field(
        "auto", description="JPEG decoding of imagenet: pil or cpu (torchvision) in the workers, or "
        "device (batched on the GPU); auto = device on CUDA, cpu elsewhere")
    image_size: int | None = Field(None, ge=4, description="synthetic/imagenet image side; None = default")
    num_classes: int | None = Field(None, ge=2, description="synthetic class count; None = default")
    channels: int | None = Field(None, ge=1, description="synthetic channel count; None = default")
    train_size: int | None = Field(None, ge=1, description="synthetic train size / cap on any train set")
    test_size: int | None = Field(None, ge=1, description="synthetic test size / cap on any test set")

    @field_validator("root")
    @classmethod
    def _expand_variables(cls, v: str) -> str:
        return os.path.expandvars(v)


class PruneConfig(Section):
    """How the mask is computed, common to every method."""

    schedule: Literal["exponential", "linear"] = "exponential"
    scope: Literal["global", "layerwise"] = "global"
    score_batches: int = Field(1, ge=1, description="training batches per gradient-based score")
    rewind: Literal["none", "init"] = Field("none", description="DRIVE: weights after pruning")
    exclude_first: bool = Field(False, description="never prune the first conv/linear layer")
    exclude_last: bool = Field(False, description="never prune the last conv/linear layer")
    balanced_batches: int | None = Field(None, ge=1, description="score on class-balanced batches "
                                         "of this many samples per class (GraSP's sampling)")
    bn: Literal["eval", "train"] = Field("eval", description="BN while SNIP, GraSP, DRIVE and FORCE "
                                         "score: running statistics (eval) or the batch's (train, "
                                         "as GraSP's and FORCE's reference code)")


class FinetuneConfig(Section):
    """Fine-tuning after pruning a trained network (``magnitude_after``)."""

    epochs: int | None = Field(None, ge=1, description="fine-tuning epochs; None = train.epochs // 4")
    lr: float | None = Field(None, gt=0, description="constant fine-tuning LR; None = train.lr / 10")


class ExperimentConfig(Section):
    """One experiment: model, data, method (and its arguments), target sparsity, training and
    pruning settings."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field("drive", description="a method of drive.method.METHODS or package.module:NAME")
    sparsity: float = Field(0.9, description="target share of prunable weights removed, in [0, 1)")
    model: str = Field("digits_cnn", description="registry name or package.module:factory")
    model_args: dict[str, Any] = Field(default_factory=dict)
    dataset: str = Field("digits", description="registry name or package.module:factory")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds torch, numpy and the data order")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    warmup_epochs: int = Field(DEFAULT_WARMUP, ge=0, description="methods that prune after a "
                               "warm-up (DRIVE): dense epochs before pruning; unset, 2 or "
                               "train.epochs - 1 when training is shorter")
    prune_iterations: int | None = Field(None, description="T; None = the method's default")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    _args: MethodArgs | None = PrivateAttr(None)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        try:
            get_method(v)
        except RegistryError as e:
            raise ValueError(str(e).removeprefix("method: ")) from None
        return v

    @field_validator("sparsity")
    @classmethod
    def _sparsity_range(cls, v: float) -> float:
        if not (0 <= v < 1) or math.isnan(v):
            raise ValueError("must be in [0, 1)")
        return v

    @field_validator("model_args")
    @classmethod
    def _sample_shape_comes_from_the_data(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "sample_shape" in v:
            raise ValueError("sample_shape is set from the data set, not a model argument")
        return v

    @field_validator("prune_iterations")
    @classmethod
    def _iterations_range(cls, v: int | None) -> int | None:
        if v is not None and not 1 <= v <= 10_000:
            raise ValueError("must be an integer in [1, 10000] (or null for the method's default)")
        return v

    @field_validator("device")
    @classmethod
    def _device_name(cls, v: str) -> str:
        if v not in ("auto", "cpu", "cuda") and not (v.startswith("cuda:") and v[5:].isdigit()):
            raise ValueError("must be auto, cpu, cuda or cuda:N")
        return v

    @model_validator(mode="wrap")
    @classmethod
    def _with_method_arguments(cls, data: Any, handler: Any) -> ExperimentConfig:
        """Validate the generic fields and every method section together (one line per problem
        of either), keep the method's arguments, then run the plan's and the method's checks."""
        if not isinstance(data, dict):
            return handler(data)
        data = dict(data)
        method = data.get("method", cls.model_fields["method"].default)
        if method == "dense":
            data["sparsity"] = 0.0
        spec = _lookup(method)
        sections = {}
        for key in [k for k in data if k not in cls.model_fields]:
            if key in BUILTINS or (spec is not None and key == spec.section):
                sections[key] = data.pop(key)
            elif spec is None and isinstance(method, str) and ":" in method:
                data.pop(key)  # a section of a method that cannot be imported: its error says it
        errors: list[InitErrorDetails] = []
        try:
            cfg = handler(data)
        except ValidationError as e:
            errors += _details(e)
        args = None
        for key, value in sections.items():
            owner = spec if spec is not None and key == spec.section else get_method(key)
            try:
                validated = owner.args.model_validate({} if value is None else value)
            except ValidationError as e:
                errors += _details(e, (key,), owner)
                continue
            if owner is spec:
                args = validated
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        cfg._args = args if args is not None else spec.args()
        if spec.plan == "after_warmup" and "warmup_epochs" not in cfg.model_fields_set:
            # a default must not make a plain --epochs 2 an error; setting the attribute directly
            # keeps the field unset (and skips validate_assignment's second pass of this validator)
            object.__setattr__(cfg, "warmup_epochs", default_warmup(cfg.train.epochs))
        cfg._check()
        return cfg

    @model_serializer(mode="wrap")
    def _dump(self, handler: Any, info: Any) -> dict[str, Any]:
        out = handler(self)
        if self._args is not None and self.spec.has_args:
            out[self.spec.section] = self._args.model_dump(mode=info.mode)
        return out

    def _check(self) -> None:
        """The checks that need several fields: the plan's, then the method's own."""
        spec = self.spec
        if spec.section in type(self).model_fields:
            raise ValueError(f"method: {self.method}'s arguments would be the section "
                             f"{spec.section!r}, which is a generic field; declare the Method "
                             "under another name")
        if spec.plan == "after_warmup" and self.warmup_epochs >= self.train.epochs:
            raise ValueError(f"warmup_epochs: must be less than train.epochs ({self.train.epochs}), "
                             f"got {self.warmup_epochs}; set warmup_epochs (--warmup-epochs) to "
                             f"{self.train.epochs - 1} or less")
        spec.check_scope(self.prune.scope)
        if spec.check is not None:
            spec.check(self)

    @property
    def spec(self) -> Method:
        """The method (:class:`drive.method.Method`)."""
        return get_method(self.method)

    @property
    def args(self) -> MethodArgs:
        """The method's arguments (its :attr:`Method.args` model, defaults filled in)."""
        if self._args is None:
            self._args = self.spec.args()
        return self._args

    @property
    def iterations(self) -> int:
        """Pruning iterations T actually used (the method default when not set)."""
        if self.prune_iterations is not None:
            return self.prune_iterations
        return self.spec.iterations

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity


def default_warmup(epochs: int) -> int:
    """The warm-up of a config that sets none: :data:`DEFAULT_WARMUP` epochs, shortened to
    ``epochs - 1`` when training is not longer than that (1 of 2 epochs; 0 of 1: pruned before
    any training)."""
    return max(0, min(DEFAULT_WARMUP, epochs - 1))


def _lookup(method: Any) -> Method | None:
    """The method named ``method``, or None when it names none (its field reports why)."""
    if not isinstance(method, str):
        return None
    try:
        return get_method(method)
    except RegistryError:
        return None


def _details(error: ValidationError, prefix: tuple[str, ...] = (),
             method: Method | None = None) -> list[InitErrorDetails]:
    """A validation error's problems, their locations under ``prefix``, to raise again (an
    unknown key in a method's section names the method and its arguments)."""
    out = []
    for e in error.errors():
        kind: Any = e["type"]
        if method is not None and kind == "extra_forbidden":
            names = ", ".join(method.args.model_fields)
            kind = PydanticCustomError(
                "unknown_argument", "unknown argument of method {method} ({allowed})",
                {"method": method.name, "allowed": f"its arguments: {names}" if names else "it takes none"})
        out.append(InitErrorDetails(type=kind, loc=(*prefix, *e["loc"]), input=e.get("input"),
                                    ctx=e.get("ctx", {})))
    return out


# --------------------------------------------------------------------------------------------
# Loading, overrides and one-line errors


def format_validation_error(err: ValidationError) -> list[str]:
    """One ``field: message`` line per pydantic error."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        if not loc and ": " in msg:  # model-level checks name their own field
            lines.append(msg)
        else:
            lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def parse_value(text: str) -> Any:
    """Parse the value of a ``key=value`` override as YAML (``0.9``, ``[1, 1, 0]``, ``true``)."""
    try:
        return yaml_files.load(text)
    except yaml.YAMLError:
        return text


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``tree['a']['b'] = value`` for ``dotted='a.b'``, creating sections as needed."""
    *parents, leaf = dotted.split(".")
    node = tree
    for p in parents:
        child = node.setdefault(p, {})
        if not isinstance(child, dict):
            raise ConfigError([f"{dotted}: {p} is not a section"])
        node = child
    node[leaf] = value


def check_override_key(item: str) -> None:
    """A ``--set`` item must be ``key=value`` with a dotted key without empty parts."""
    key, sep, _ = item.partition("=")
    if not sep or not key.strip() or "" in key.strip().split("."):
        raise ConfigError([f"--set {item}: expected key=value with a dotted key (e.g. "
                           "train.lr=0.1)"])


def apply_overrides(tree: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key=value`` strings (dotted keys) to a config dict, returning it."""
    for item in overrides:
        key, sep, value = item.partition("=")
        check_override_key(item)
        set_dotted(tree, key.strip(), parse_value(value))
    return tree


def read_yaml(path: str | Path, field: str = "config") -> dict[str, Any]:
    """Read a YAML mapping with ``safe_load``'s loader; errors name ``field`` and the file.

    A binary, non-UTF-8, empty or non-mapping file is refused, and so is a key given twice (an
    empty file is more likely a mistake than a wish for the defaults, which no file gives).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
        if b"\x00" in raw:
            raise ConfigError([f"{field}: {p} is not a text file (binary content); give a YAML file"])
        data = yaml_files.load(raw.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError([f"{field}: file not found: {p}"]) from None
    except OSError as e:  # a folder, no permission, ...
        raise ConfigError([f"{field}: cannot read {p} ({e.strerror or e})"]) from None
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError([f"{field}: {p} is not UTF-8 text (byte 0x{raw[e.start]:02x} on line "
                           f"{line}); save it as UTF-8"]) from None
    except yaml.YAMLError as e:
        raise ConfigError([f"{field}: {p} is not valid YAML ({yaml_files.describe_yaml_error(e)})"]) from None
    if data is None:
        raise ConfigError([f"{field}: {p} is empty; give at least one field (or no file for the defaults)"])
    if not isinstance(data, dict):
        raise ConfigError([f"{field}: {p} must hold a mapping of fields, not a {type(data).__name__}"])
    return data


def build_config(tree: dict[str, Any]) -> ExperimentConfig:
    """Validate a config dict; raise :class:`ConfigError` with one line per bad field."""
    try:
        return ExperimentConfig.model_validate(tree)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Config from an optional YAML file plus ``key=value`` overrides."""
    tree = read_yaml(path) if path else {}
    return build_config(apply_overrides(tree, overrides or []))
