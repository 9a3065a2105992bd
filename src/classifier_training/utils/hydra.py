"""Registration of classes as Hydra config nodes (``@register``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore

T = TypeVar("T", bound=type)

# Constructor arguments that are filled in at run time from the data, never from
# the config, so that they can never disagree with the dataset.
RUNTIME_ARGS: frozenset[str] = frozenset(
    {"num_classes", "class_names", "class_weights"}
)


def config_node_for(cls: type, exclude: Iterable[str] = RUNTIME_ARGS) -> dict[str, Any]:
    """Build a Hydra config node from a class's constructor defaults.

    Args:
        cls: The class to describe; every constructor argument must have a default,
            except those named in ``exclude``.
        exclude: Argument names left out of the node (set at instantiation).

    Returns:
        A dict with ``_target_`` and one key per constructor argument.

    Raises:
        TypeError: If an argument has no default and is not excluded.
    """
    node: dict[str, Any] = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
    excluded = set(exclude)
    for name, param in inspect.signature(cls).parameters.items():
        if name == "self" or name in excluded:
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            raise TypeError(
                f"{cls.__qualname__}.__init__ argument {name!r} needs a default "
                "to be registered as a config node"
            )
        node[name] = param.default
    return node


def register(group: str, name: str) -> Callable[[T], T]:
    """Class decorator: store the class as config ``group/name`` in Hydra's ConfigStore.

    The stored node has ``_target_`` pointing at the class and every constructor
    default as a key, so ``model=resnet50 model.learning_rate=3e-4`` works without
    a hand-written YAML file, and the defaults live in one place: the code.

    Args:
        group: Config group, e.g. ``"model"``.
        name: Option name within the group, e.g. ``"resnet18"``.

    Returns:
        The decorator, which returns the class unchanged.
    """

    def decorator(cls: T) -> T:
        ConfigStore.instance().store(group=group, name=name, node=config_node_for(cls))
        return cls

    return decorator
