"""A pydantic base model that takes numbers only as numbers: never NaN or infinity, never a
boolean.

YAML reads ``yes``, ``no``, ``on``, ``off``, ``true`` and ``false`` as booleans and pydantic's lax
mode would turn them into 1 and 0 (``sparsity: no`` a dense run, ``seed: yes`` seed 1), and
``.inf``/``1e400`` into an infinite learning rate that only diverges later; every config and
sweep section derives from :class:`CheckedModel` so that each is one error line instead.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _accepts_bool(annotation: Any) -> bool:
    """Whether a field of this type may hold a boolean as itself (bool, Any, unions with them)."""
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_bool(a) for a in typing.get_args(annotation))
    if origin is typing.Literal:
        return any(isinstance(a, bool) for a in typing.get_args(annotation))
    return False


def _takes_numbers(annotation: Any) -> bool:
    """Whether a field of this type holds an int or a float (alone or in a union)."""
    if annotation in (int, float):
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_takes_numbers(a) for a in typing.get_args(annotation))
    return False


def _misread_boolean(value: Any, annotation: Any) -> bool:
    """Whether ``value`` is (or, for a list field, holds) a boolean where a number is expected."""
    if isinstance(value, bool):
        return _takes_numbers(annotation) and not _accepts_bool(annotation)
    if isinstance(value, list) and typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return any(_misread_boolean(v, item) for v in value)
    return False


class CheckedModel(BaseModel):
    """Base of the config and sweep sections: finite numbers, no booleans for numbers."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _misread_boolean(value, field.annotation):
            raise ValueError(f"must be a number, not a boolean, got {value!r} (YAML reads yes, no, "
                             "on, off, true and false as booleans)")
        return value


class Section(CheckedModel):
    """Base of an experiment config's sections: unknown keys refused, assignments checked too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
