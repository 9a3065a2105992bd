"""Override keys checked before Hydra composes the run: a misspelt key ends in one
line that names the closest valid key(s), exit 2, and no run folder is made.

Hydra's own message for ``data.batch_sise=8`` suggests appending the key with
``+``; with ``+`` an unknown key reached the code much later. Both are checked
here against the recipe composed with the command's group choices (``model=``,
``trainer=``, ...): a key without ``+`` must exist; a new key (``+``/``++``) must
be one its node accepts: a constructor argument of the node's ``_target_``, a
field of the data settings (:class:`~classifier_training.config.DataModuleConfig`),
or a new entry of a collection (``callbacks``, ``logging``).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Sequence
from typing import Any, get_args

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import OmegaConf
from pydantic import BaseModel

from classifier_training.config import ConfigError, DataModuleConfig

CONFIG_MODULE = "classifier_training.conf"
# Flags of Hydra's command line that take a value (the value is no override).
_FLAGS_WITH_VALUE = frozenset(
    {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd",
     "--cfg", "-c", "--package", "-p", "--experimental-rerun"}
)  # fmt: skip
# With these Hydra does something else than a run (or reads another config tree).
_SKIP_FLAGS = frozenset(
    {"--config-path", "-cp", "--config-dir", "-cd", "--info", "-i",
     "--shell-completion", "-sc", "--hydra-help", "--version",
     "--experimental-rerun"}
)  # fmt: skip


def split_command_line(argv: Sequence[str]) -> tuple[str | None, list[str], bool]:
    """The recipe, the overrides, and whether the check applies.

    Args:
        argv: The arguments after the program name.

    Returns:
        ``(config_name, overrides, checkable)``.
    """
    config_name: str | None = None
    overrides: list[str] = []
    checkable = True
    args = iter(argv)
    for arg in args:
        flag, has_value, value = arg.partition("=")
        if arg.startswith("-"):
            checkable &= flag not in _SKIP_FLAGS
            if flag in _FLAGS_WITH_VALUE:
                value = value if has_value else next(args, "")
                if flag in ("--config-name", "-cn"):
                    config_name = value
            continue
        overrides.append(arg)
    return config_name, overrides, checkable


def _flatten(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a plain config (nodes and leaves)."""
    keys = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}{key}"
            keys.append(path)
            keys += _flatten(value, path + ".")
    return keys


def _lookup(tree: dict[str, Any], parts: Sequence[str]) -> tuple[int, Any]:
    """How many leading parts of a key exist, and the deepest node they reach."""
    node: Any = tree
    for depth, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return depth, node
    return len(parts), node


def _settings_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds (``X`` or ``X | None``), if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _accepted_new_keys(path: Sequence[str], node: Any) -> list[str] | None:
    """The new keys the node at ``path`` accepts; ``None``: any key."""
    if isinstance(node, dict) and "_target_" in node:
        try:
            parameters = inspect.signature(get_object(str(node["_target_"]))).parameters
        except (ImportError, ValueError, TypeError, HydraException):
            return None  # instantiation will say what is wrong
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return None
        return [name for name in parameters if name != "self"]
    if path and path[0] == "data":
        model: type[BaseModel] | None = DataModuleConfig
        for part in path[1:]:
            field = model.model_fields.get(part) if model else None
            model = _settings_model(field.annotation) if field else None
            if model is None:
                return None  # a mapping field (e.g. sampler.class_weights)
        return list(model.model_fields) if model else None
    if (
        isinstance(node, dict)
        and node
        and all(isinstance(v, dict) and "_target_" in v for v in node.values())
    ):
        return None  # a collection: callbacks, logging
    return []


def closest_keys(key: str, candidates: Sequence[str]) -> list[str]:
    """The valid keys a misspelt ``key`` most likely meant (at most three).

    A close spelling of the whole key first, then the same last part at another
    level (``model.lr`` -> ``optimizer.lr``), then a looser spelling match.
    """
    unique = list(dict.fromkeys(candidates))
    close = difflib.get_close_matches(key, unique, n=3, cutoff=0.85)
    if close:
        return close
    leaf = key.rpartition(".")[2]
    same_leaf = [c for c in unique if c.rpartition(".")[2] == leaf]
    if same_leaf:
        return same_leaf[:3]
    return difflib.get_close_matches(key, unique, n=2, cutoff=0.7)


def _unknown(key: str, candidates: Sequence[str], what: str) -> ConfigError:
    """The one line for an unknown key, naming the closest candidates."""
    close = closest_keys(key, [c for c in candidates if c.rpartition(".")[2]])
    guess = f"; did you mean {' or '.join(close)}?" if close else ""
    return ConfigError(f"{key}: {what}{guess}")


def check_override(override: Override, tree: dict[str, Any]) -> None:
    """Refuse one override whose key the composed config does not accept.

    Args:
        override: A parsed value override (not a group choice).
        tree: The composed config as plain values (interpolations unresolved).

    Raises:
        ConfigError: If the key is unknown, naming the closest valid key(s).
    """
    key = override.key_or_group
    parts = key.split(".")
    depth, node = _lookup(tree, parts)
    candidates = [k for k in _flatten(tree) if not k.startswith("hydra")]
    if depth == len(parts):
        return  # it exists (adding it again is Hydra's error to report)
    if override.type in (OverrideType.CHANGE, OverrideType.DEL):
        raise _unknown(key, candidates, "unknown key (all keys: --cfg job)")
    parent = parts[:depth]
    accepted = _accepted_new_keys(parent, node) if depth else []
    if accepted is None or (depth == len(parts) - 1 and parts[-1] in accepted):
        return
    prefix = ".".join(parent) + "." if parent else ""
    where = prefix.rstrip(".") if parent else "the top level"
    raise _unknown(
        key,
        [prefix + name for name in accepted] + candidates,
        f"not a key {where} accepts",
    )


def check_group_choice(group: str, chosen: Sequence[str], options: list[str]) -> None:
    """Refuse a group option that does not exist (``model=resnet5``).

    Raises:
        ConfigError: Naming the closest option and listing them all.
    """
    for value in chosen:
        if value in options or value.startswith("["):  # a list: Hydra checks it
            continue
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
        guess = f"did you mean {group}={close[0]}? " if close else ""
        raise ConfigError(
            f"{group}={value}: no such option; {guess}(options: {', '.join(options)})"
        )


def check_command_line(argv: Sequence[str], default_recipe: str) -> None:
    """Check every override key of a ``classifier-train`` command line.

    The recipe is composed with the command's group choices only (a sweep over
    a group: its first option); the value overrides are then looked up in it.
    Overrides Hydra cannot parse, ``hydra.*`` keys, package overrides
    (``key@pkg``) and commands with another config tree are left to Hydra.

    Args:
        argv: The arguments after the program name.
        default_recipe: The recipe used without ``--config-name``.

    Raises:
        ConfigError: The first unknown key, with the closest valid key(s).
    """
    config_name, texts, checkable = split_command_line(argv)
    if not checkable or not texts:
        return
    try:
        parsed = OverridesParser.create().parse_overrides(texts)
    except HydraException:
        return
    parsed = [o for o in parsed if not o.key_or_group.startswith("hydra")]
    if not GlobalHydra.instance().is_initialized():
        with initialize_config_module(CONFIG_MODULE, version_base="1.3"):
            _check(parsed, config_name or default_recipe)
    else:  # pragma: no cover - called inside a composed session
        _check(parsed, config_name or default_recipe)


def _check(parsed: list[Override], config_name: str) -> None:
    loader = GlobalHydra.instance().config_loader()
    groups, values = [], []
    for override in parsed:
        if override.package is not None:
            continue
        if loader.get_group_options(override.key_or_group):
            groups.append(override)
        else:
            values.append(override)
    choices = []
    for override in groups:
        prefix = {OverrideType.ADD: "+", OverrideType.FORCE_ADD: "++",
                  OverrideType.DEL: "~"}.get(override.type, "")  # fmt: skip
        if override.type is OverrideType.DEL and override.value() is None:
            choices.append(f"~{override.key_or_group}")
            continue
        value = (
            next(override.sweep_string_iterator())
            if override.is_sweep_override()
            else override.get_value_element_as_str()
        )
        check_group_choice(
            override.key_or_group,
            [value] if not override.is_sweep_override() else [],
            loader.get_group_options(override.key_or_group),
        )
        choices.append(f"{prefix}{override.key_or_group}={value}")
    try:
        cfg = compose(config_name, overrides=choices)
    except HydraException:
        return  # a bad group choice or recipe: Hydra's message says which
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    tree = {str(key): value for key, value in container.items()}
    for override in values:
        check_override(override, tree)
