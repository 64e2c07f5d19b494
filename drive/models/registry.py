"""The model registry and :func:`build_model`, the one entry point the experiment code uses."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from drive.registry import Registry, RegistryError

#: ``factory(num_classes, in_channels, image_size, **kwargs) -> nn.Module``
ModelFactory = Callable[..., nn.Module]

#: Built-in models by name; the factories register themselves when :mod:`drive.models` is imported.
MODELS: Registry[ModelFactory] = Registry("model")


class ModelError(ValueError):
    """A model that cannot be built; the message is one line starting with the field at fault
    (``model: ...`` or ``model_args: ...``)."""

    def __init__(self, message: str):
        super().__init__(" ".join(message.split()))


def check_image_size(model: str, image_size: int, minimum: int) -> None:
    """Raise :class:`ModelError` unless ``image_size >= minimum`` (smaller inputs would pool away)."""
    if image_size < minimum:
        raise ModelError(f"model: {model} needs image_size >= {minimum}, got {image_size}")


def build_model(name: str, num_classes: int, in_channels: int, image_size: int,
                **model_args: Any) -> nn.Module:
    """Build a freshly initialised model (seed torch first for a repeatable one).

    Args:
        name: a registered name (see ``MODELS.names()``) or an import path
            ``package.module:factory`` whose factory takes the same arguments as the built-ins.
        num_classes: outputs of the classifier.
        in_channels: channels of the input images.
        image_size: side of the (square) input images.
        **model_args: extra keyword arguments of the factory (e.g. ``width`` or ``hidden``).

    Raises:
        ModelError: unknown name, unknown or invalid ``model_args``, unsupported input size.
    """
    try:
        factory = MODELS.get(name)
    except RegistryError as e:
        raise ModelError(str(e)) from None
    for field, value in (("num_classes", num_classes), ("in_channels", in_channels),
                         ("image_size", image_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelError(f"model: {field} must be a positive integer, got {value!r}")
    _check_arguments(name, factory, model_args)
    try:
        model = factory(num_classes, in_channels, image_size, **model_args)
    except ModelError:
        raise
    except (TypeError, ValueError) as e:
        raise ModelError(f"model_args: {e} (model {name!r})") from None
    except Exception as e:  # a user's factory that fails: one line, not a traceback
        raise ModelError(f"model: {name!r} could not be built ({type(e).__name__}: {e})") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"model: {name!r} returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _check_arguments(name: str, factory: ModelFactory, model_args: dict[str, Any]) -> None:
    """Reject keyword arguments the factory does not take, listing those it does."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables have no introspectable signature
        return
    try:
        signature.bind(1, 1, 1, **model_args)
    except TypeError:
        if not model_args:
            raise ModelError(f"model: factory of {name!r} must accept "
                             "(num_classes, in_channels, image_size, **kwargs)") from None
        allowed = [p.name for p in signature.parameters.values()
                   if p.kind is p.KEYWORD_ONLY
                   or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is not p.empty)]
        unknown = sorted(set(model_args) - set(allowed)) or sorted(model_args)
        raise ModelError(f"model_args: unknown argument(s) {', '.join(unknown)} for model {name!r}; "
                         f"allowed: {', '.join(allowed) or 'none'}") from None
