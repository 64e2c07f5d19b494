"""The model registry and :func:`build_model`, the one entry point the experiment code uses."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from drive.errors import ModelError, RegistryError
from drive.registry import Registry

#: ``factory(num_classes, in_channels, image_size, **kwargs) -> nn.Module``; a factory that
#: declares a ``sample_shape`` parameter also gets the shape of one input sample (see build_model)
ModelFactory = Callable[..., nn.Module]

#: The keyword argument that gives a factory the sample shape (a factory opts in by naming it).
SAMPLE_SHAPE = "sample_shape"

#: Built-in models by name; the factories register themselves when :mod:`drive.models` is imported.
MODELS: Registry[ModelFactory] = Registry("model")


def check_image_size(model: str, image_size: int, minimum: int) -> None:
    """Raise :class:`ModelError` unless ``image_size >= minimum`` (smaller inputs would pool away)."""
    if image_size < minimum:
        raise ModelError(f"model: {model} needs image_size >= {minimum}, got {image_size}")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int, *,
                sample_shape: Sequence[int] | None = None, **model_args: Any) -> nn.Module:
    """Build a freshly initialised model (seed torch first for a repeatable one).

    Args:
        name: a registered name (see ``MODELS.names()``) or an import path
            ``package.module:factory`` whose factory takes the same arguments as the built-ins.
        num_classes: outputs of the classifier.
        in_channels: channels of the input samples.
        image_size: side of square input images (height of others, length of 1-D signals).
        sample_shape: the shape of one input sample, ``(C, H, W)`` images or ``(C, L)``
            signals (``in_channels`` first); default ``(in_channels, image_size, image_size)``.
            It is passed on as ``sample_shape=`` to factories that have a parameter of that
            name; a factory without one takes images ``(C, H, W)`` only (and is given ``H``).
        **model_args: extra keyword arguments of the factory (e.g. ``width`` or ``hidden``).

    Raises:
        ModelError: unknown name, unknown or invalid ``model_args``, unsupported input shape.
    """
    try:
        factory = MODELS.get(name)
    except RegistryError as e:
        raise ModelError(str(e)) from None
    for field, value in (("num_classes", num_classes), ("in_channels", in_channels),
                         ("image_size", image_size)):
        if not _positive_int(value):
            raise ModelError(f"model: {field} must be a positive integer, got {value!r}")
    shape = (in_channels, image_size, image_size) if sample_shape is None else tuple(sample_shape)
    if len(shape) < 2 or not all(_positive_int(d) for d in shape) or shape[0] != in_channels:
        raise ModelError(f"model: sample_shape must be positive integers (C, ...) with C = in_channels "
                         f"({in_channels}), got {sample_shape!r}")
    given = {SAMPLE_SHAPE: shape} if _takes_sample_shape(factory) else {}
    if not given and len(shape) != 3:
        raise ModelError(f"model: {name!r} takes images (C, H, W); the data set's samples are "
                         f"{shape} (a factory for other inputs declares a {SAMPLE_SHAPE} parameter)")
    _check_arguments(name, factory, model_args, given)
    try:
        model = factory(num_classes, in_channels, image_size, **given, **model_args)
    except ModelError:
        raise
    except (TypeError, ValueError) as e:
        raise ModelError(f"model_args: {e} (model {name!r})") from None
    except Exception as e:  # a user's factory that fails: one line (a built-in's: a bug, traced)
        if ":" not in name:
            raise
        raise ModelError(f"model: {name!r} could not be built ({type(e).__name__}: {e})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model: {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _takes_sample_shape(factory: ModelFactory) -> bool:
    """Whether the factory declares a ``sample_shape`` parameter (keyword-capable)."""
    try:
        parameter = inspect.signature(factory).parameters.get(SAMPLE_SHAPE)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY,
                                                        parameter.POSITIONAL_OR_KEYWORD)


def _check_arguments(name: str, factory: ModelFactory, model_args: dict[str, Any],
                     given: dict[str, Any]) -> None:
    """Reject keyword arguments the factory does not take, listing those it does (``given``:
    the ones build_model adds)."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        return
    try:
        signature.bind(1, 1, 1, **given, **model_args)
    except TypeError:
        if not model_args:
            raise ModelError(f"model: factory of {name!r} must accept "
                             "(num_classes, in_channels, image_size, **kwargs)") from None
        allowed = [p.name for p in signature.parameters.values()
                   if p.name != SAMPLE_SHAPE and (p.kind is p.KEYWORD_ONLY
                   or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty))]
        unknown = sorted(set(model_args) - set(allowed)) or sorted(model_args)
        raise ModelError(f"model_args: unknown argument(s) {', '.join(unknown)} for model {name!r}; "
                         f"allowed: {', '.join(allowed) or 'none'}") from None
