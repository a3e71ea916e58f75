"""Node functions made from shared ones, for the pipelines that instantiate a node per label."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable


def with_labels(function: Callable, *labels: str) -> Callable:
    """``function`` with its leading label arguments bound, as a function Kedro can read: named and
    documented as ``function``, with the signature and types of its other parameters (a partial hides
    them, and Kedro would then hand the node raw parameter dictionaries)."""

    def bound(*args):
        return function(*labels, *args)

    signature, hints = inspect.signature(function), typing.get_type_hints(function)
    parameters = list(signature.parameters.values())[len(labels) :]
    bound.__signature__ = signature.replace(parameters=parameters)
    bound.__annotations__ = {name: hints[name] for name in [p.name for p in parameters] + ["return"] if name in hints}
    bound.__name__ = bound.__qualname__ = function.__name__
    bound.__doc__ = function.__doc__
    return bound
