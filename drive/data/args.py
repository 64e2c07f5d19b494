"""Options of a data set: the ``data.args`` mapping of a config, checked against a schema.

A factory that takes options declares them as a pydantic model and marks itself with
:func:`takes_args`; :func:`drive.data.load_dataset` then rejects unknown or invalid keys with
one line naming ``data.args.<key>`` before the factory runs, and the factory reads them typed::

    class MyArgs(DataArgs):
        num_samples: int = Field(1000, ge=1)

    @takes_args(MyArgs)
    def my_data(cfg: DataConfig) -> ImageData:
        args = dataset_args(cfg, MyArgs, "my_data")
        ...

A factory given by import path without the mark gets ``cfg.args`` unchecked; a built-in data
set without options rejects any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from drive.config import DataConfig
from drive.errors import DataError

A = TypeVar("A", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])


class DataArgs(BaseModel):
    """Base of a data set's option schema: every field has a default; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def takes_args(schema: type[BaseModel]) -> Callable[[F], F]:
    """Decorator: the factory takes the options ``schema`` (a pydantic model) in ``cfg.args``."""

    def mark(factory: F) -> F:
        factory.args_schema = schema  # type: ignore[attr-defined]
        return factory

    return mark


def dataset_args(cfg: DataConfig, schema: type[A], dataset: str) -> A:
    """``cfg.args`` validated by ``schema``, defaults filled in.

    Raises:
        DataError: one line, each problem naming ``data.args.<key>`` (unknown keys list the
            allowed ones).
    """
    try:
        return schema.model_validate(cfg.args)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(part) for part in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"data.args.{key}: unknown option of dataset {dataset}; allowed: "
                                f"{', '.join(schema.model_fields)}")
            else:
                problems.append(f"data.args.{key}: {err['msg'].removeprefix('Value error, ')}")
        raise DataError("; ".join(problems)) from None


def check_args(name: str, factory: Callable[..., Any], cfg: DataConfig) -> None:
    """Check ``cfg.args`` for the data set ``name`` before its factory runs.

    Raises:
        DataError: invalid options for a marked factory, or options for a built-in without any.
    """
    schema = getattr(factory, "args_schema", None)
    if schema is not None:
        dataset_args(cfg, schema, name)
    elif cfg.args and ":" not in name:
        raise DataError(f"data.args.{next(iter(cfg.args))}: dataset {name} takes no options "
                        f"(data.args must be empty)")
