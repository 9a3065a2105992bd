"""Registration of classes as Hydra config nodes (``@register``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

T = TypeVar("T", bound=type)

# Constructor arguments that are filled in at run time from the data, never from
# the config, so that they can never disagree with the dataset.
RUNTIME_ARGS: frozenset[str] = frozenset(
    {"num_classes", "class_names", "class_weights", "class_counts"}
)
# Constructor arguments filled in from their own config groups.
GROUP_ARGS: frozenset[str] = frozenset({"optimizer", "scheduler"})


def settings_node(
    settings: type[BaseModel], exclude: Iterable[str] = ()
) -> dict[str, Any]:
    """A pydantic model's defaults as config values (``???`` where required).

    Args:
        settings: The pydantic model.
        exclude: Fields left out.

    Returns:
        One key per field, its default as plain JSON values.
    """
    node: dict[str, Any] = {}
    excluded = set(exclude)
    for field, info in settings.model_fields.items():
        if field in excluded:
            continue
        if info.is_required():
            node[field] = MISSING
        else:
            default = info.get_default(call_default_factory=True)
            node[field] = to_jsonable_python(default)
    return node


def config_node_for(
    cls: type, exclude: Iterable[str] = RUNTIME_ARGS | GROUP_ARGS
) -> dict[str, Any]:
    """Build a Hydra config node from a class's settings and constructor defaults.

    The keys are the fields of the class's ``settings_model`` (a pydantic model,
    as :class:`~classifier_training.models.base.BaseClassificationModel` declares
    its settings), if it has one, and the named constructor arguments.

    Args:
        cls: The class to describe; every constructor argument must have a default,
            except those named in ``exclude``.
        exclude: Argument names left out of the node (set at instantiation).

    Returns:
        A dict with ``_target_`` and one key per setting.

    Raises:
        TypeError: If an argument has no default and is not excluded.
    """
    node: dict[str, Any] = {"_target_": f"{cls.__module__}.{cls.__qualname__}"}
    excluded = set(exclude)
    settings = getattr(cls, "settings_model", None)
    if isinstance(settings, type) and issubclass(settings, BaseModel):
        node.update(settings_node(settings, excluded))
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


def register(group: str, name: str, **defaults: Any) -> Callable[[T], T]:
    """Class decorator: store the class as config ``group/name`` in Hydra's ConfigStore.

    The stored node has ``_target_`` pointing at the class and every setting's
    default as a key (see :func:`config_node_for`), so ``model=resnet50
    model.label_smoothing=0`` works without a hand-written YAML file, and the
    defaults live in one place: the code. Stacking the decorator registers one
    class under several names.

    Args:
        group: Config group, e.g. ``"model"``.
        name: Option name within the group, e.g. ``"resnet18"``.
        **defaults: Keys of this option that differ from the class's defaults,
            e.g. ``label_smoothing=0.0``.

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        TypeError: If a key of ``defaults`` is not a setting of the class.
    """

    def decorator(cls: T) -> T:
        node = config_node_for(cls)
        unknown = sorted(set(defaults) - set(node))
        if unknown:
            raise TypeError(f"{cls.__qualname__} has no setting(s) {unknown}")
        node.update(defaults)
        ConfigStore.instance().store(group=group, name=name, node=node)
        return cls

    return decorator


def register_settings(
    group: str,
    name: str,
    settings: type[BaseModel],
    *,
    package: str | None = None,
    exclude: Iterable[str] = (),
    **defaults: Any,
) -> None:
    """Store a pydantic settings model's defaults as config ``group/name``.

    The YAML files of the group start from this node (``defaults: [name]``) and
    hold only what differs, so each default is written once: in the model.

    Args:
        group: Config group, e.g. ``"data"``.
        name: Option name within the group.
        settings: The pydantic model; fields without a default become ``???``
            (required).
        package: Where the node lands in the composed config (default: ``group``).
        exclude: Fields left out (e.g. filled in by another group).
        **defaults: Keys whose config default differs from the model's (e.g.
            ``mean=None``: resolved at run time).
    """
    node = settings_node(settings, exclude)
    node.update(defaults)
    ConfigStore.instance().store(group=group, name=name, node=node, package=package)
