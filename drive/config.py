"""Typed, validated configuration of one pruning experiment.

A config is a pydantic model with defaults for everything, so ``ExperimentConfig()`` is the
embedded default (DRIVE on scikit-learn's digits at 90% sparsity). Configs come from YAML files
(loaded with ``yaml.safe_load``), from dicts and from ``key=value`` overrides with dotted names.
Every validation problem becomes one line ``field: what is allowed`` (see :class:`ConfigError`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from drive.checked import CheckedModel
from drive import yaml_files


class ConfigError(ValueError):
    """Invalid configuration; ``str()`` is one line per problem, each naming the field."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))

    def __reduce__(self):  # picklable with every line intact (errors cross process boundaries)
        return (type(self), (self.problems,))


#: Largest seed: numpy's and scikit-learn's seeds are 32-bit.
MAX_SEED = 2**32 - 1


class _Section(CheckedModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
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


class TrainConfig(_Section):
    """SGD training schedule shared by every phase that trains."""

    epochs: int = Field(12, ge=1, le=10_000)
    batch_size: int = Field(64, ge=1)
    eval_batch_size: int = Field(512, ge=1)
    lr: float = Field(0.05, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(5e-4, ge=0)
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


class PruneConfig(_Section):
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


class DriveConfig(_Section):
    """DRIVE's score: a combination of |w|, |w*g| and |g| (DESIGN.md, "Scores")."""

    weights: list[float] = Field(default_factory=lambda: [1.0, 1.0, 1.0],
                                 description="[a, b, c] for |w|, |w*g|, |g|")
    normalize: Literal["mean", "none"] = "mean"
    combine: Literal["sum", "product"] = "sum"

    @field_validator("weights")
    @classmethod
    def _three_nonnegative(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(w < 0 for w in v) or not any(w > 0 for w in v):
            raise ValueError("must be three non-negative numbers, at least one positive")
        return v


class SynflowConfig(_Section):
    float64: bool = Field(True, description="compute the scores in float64 (float32 rounding "
                          "decides near-ties); scores are exact at any depth either way")


class GraspConfig(_Section):
    temperature: float = Field(200.0, gt=0, description="softmax temperature (Wang et al. use 200)")


class ProsprConfig(_Section):
    steps: int = Field(3, ge=1, le=100, description="inner SGD steps of the meta-gradient (Alizadeh et al. use 3)")
    lr: float | None = Field(None, gt=0, description="inner learning rate; None = train.lr")


class FinetuneConfig(_Section):
    """Fine-tuning after pruning a trained network (``magnitude_after``)."""

    epochs: int | None = Field(None, ge=1, description="fine-tuning epochs; None = train.epochs // 4")
    lr: float | None = Field(None, gt=0, description="constant fine-tuning LR; None = train.lr / 10")


class ImpConfig(_Section):
    rate: float = Field(0.2, gt=0, lt=1, description="share of remaining weights pruned per round")
    rewind: Literal["weights", "lr"] = Field("weights", description="after pruning, rewind the "
                                             "weights and the LR (lottery tickets) or the LR only "
                                             "(learning-rate rewinding, Renda et al. 2020)")
    rewind_epoch: int = Field(0, ge=0, description="epoch the weights (or LR schedule) rewind to")
    branches: list[float] = Field(default_factory=list,
                                  description="extra sparsities, each a branch off the trunk (reported)")

    @field_validator("branches")
    @classmethod
    def _branches_in_range(cls, v: list[float]) -> list[float]:
        if any(not 0 < s < 1 for s in v):
            raise ValueError("must be sparsities in (0, 1)")
        return sorted(set(v))


class ExperimentConfig(_Section):
    """One experiment: model, data, method, target sparsity, training and pruning settings."""

    method: str = Field("drive", description="a method of drive.methods.METHODS or package.module:NAME")
    sparsity: float = Field(0.9, description="target share of prunable weights removed, in [0, 1)")
    model: str = Field("digits_cnn", description="registry name or package.module:factory")
    model_args: dict[str, Any] = Field(default_factory=dict)
    dataset: str = Field("digits", description="registry name or package.module:factory")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds torch, numpy and the data order")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    warmup_epochs: int = Field(2, ge=0, description="DRIVE: dense epochs before pruning")
    prune_iterations: int | None = Field(None, description="T; None = the method's default")
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    prune: PruneConfig = Field(default_factory=PruneConfig)
    drive: DriveConfig = Field(default_factory=DriveConfig)
    synflow: SynflowConfig = Field(default_factory=SynflowConfig)
    grasp: GraspConfig = Field(default_factory=GraspConfig)
    imp: ImpConfig = Field(default_factory=ImpConfig)
    prospr: ProsprConfig = Field(default_factory=ProsprConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)

    @field_validator("method")
    @classmethod
    def _known_method(cls, v: str) -> str:
        from drive.methods import get_method  # the registry imports the scores, which import this

        try:
            get_method(v)
        except LookupError as e:
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

    @model_validator(mode="before")
    @classmethod
    def _dense_has_no_sparsity(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("method") == "dense":
            data = {**data, "sparsity": 0.0}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.spec.plan == "after_warmup" and self.warmup_epochs >= self.train.epochs:
            raise ValueError(f"warmup_epochs: must be less than train.epochs ({self.train.epochs}), "
                             f"got {self.warmup_epochs}")
        self.spec.check_scope(self.prune.scope)
        if self.spec.plan == "imp" and any(b >= self.sparsity for b in self.imp.branches):
            raise ValueError(f"imp.branches: must be below sparsity ({self.sparsity}), the trial's "
                             f"headline level, got {self.imp.branches}")
        if self.spec.plan == "imp" and self.imp.rewind_epoch >= self.train.epochs:
            raise ValueError(f"imp.rewind_epoch: must be less than train.epochs ({self.train.epochs}), "
                             f"got {self.imp.rewind_epoch}")
        return self

    @property
    def spec(self):
        """The method's registry entry (:class:`drive.methods.Method`)."""
        from drive.methods import get_method

        return get_method(self.method)

    @property
    def iterations(self) -> int:
        """Pruning iterations T actually used (the method default when not set)."""
        if self.prune_iterations is not None:
            return self.prune_iterations
        return self.spec.iterations

    @property
    def density(self) -> float:
        return 1.0 - self.sparsity


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
