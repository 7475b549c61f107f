"""The type the verl that runs declares for a key, and whether an override's value has it.

verl 0.9.1 composes plain YAML (no structured config), so OmegaConf accepts `lr: abc`; the dataclass the node is
converted to (`_target_`, e.g. verl/trainer/config/actor/actor.yaml:8 -> verl.workers.config.FSDPActorConfig, by
verl.utils.config.omega_conf_to_dataclass) does not check field types either, and `abc` reaches torch's optimizer.
So the type is read from that dataclass's field annotation, else from the type of verl's default for the key.
"""

from __future__ import annotations

import functools
import importlib
import types
import typing
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from liverl.errors import Problem
from liverl.recipe.knobs import is_int, show

_UNSET = object()
# keys whose default is a path but whose reader takes a path or a list of paths: create_rl_dataset hands them to
# RLHFDataset, which wraps a single path in a list (verl/trainer/ppo/utils.py:110-130,
# verl/utils/dataset/rl_dataset.py:97-98)
_PATH_OR_LIST = {"data.train_files", "data.val_files"}


@functools.cache
def _field_types(target: str) -> dict[str, Any]:
    """The annotated field types of verl's config dataclass `target` (empty when it cannot be imported)."""
    module, _, name = target.rpartition(".")
    try:
        return typing.get_type_hints(getattr(importlib.import_module(module), name))
    except Exception:  # not a dataclass, or a verl that does not import here: fall back to defaults
        return {}


def _declared(verl_cfg: DictConfig, key: str, in_process: bool) -> tuple[Any, str] | None:
    """(annotation, where it is declared) from the dataclass of the key's parent node, when verl has one."""
    parent, _, leaf = key.rpartition(".")
    target = OmegaConf.select(verl_cfg, f"{parent}._target_" if parent else "_target_", default=None,
                              throw_on_resolution_failure=False)
    if not (in_process and isinstance(target, str)):
        return None
    hints = _field_types(target)
    return (hints[leaf], f"{target}.{leaf}") if leaf in hints else None


def _matches(value: Any, tp: Any) -> bool:
    """Whether a value fits a dataclass annotation (unknown annotations accept anything)."""
    origin = typing.get_origin(tp)
    if tp is Any or isinstance(tp, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(tp))
    if origin is typing.Literal:
        return value in typing.get_args(tp)
    if tp is type(None):
        return value is None
    if value is None:
        return False
    base = origin or tp
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return is_int(value)
    if base is float:
        return is_int(value) or isinstance(value, float)
    if base is str:
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if base in (list, tuple, set, typing.Sequence):
        return isinstance(value, (list, tuple, ListConfig))
    if base in (dict, typing.Mapping) or (isinstance(base, type) and hasattr(base, "__dataclass_fields__")):
        return isinstance(value, (dict, DictConfig))
    return True


def _describe(tp: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list", dict: "a map"}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        rest = " or ".join(_describe(a) for a in arms)
        return f"{rest} or null" if len(arms) < len(typing.get_args(tp)) else rest
    if typing.get_origin(tp) is typing.Literal:
        return "one of " + " | ".join(map(str, typing.get_args(tp)))
    return names.get(typing.get_origin(tp) or tp, getattr(tp, "__name__", str(tp)))


def _default_type(default: Any) -> Any:
    """The annotation a default stands for (None: the default does not constrain the value)."""
    if default is None or default is _UNSET:
        return None
    if isinstance(default, DictConfig):
        return dict if len(default) else None  # an empty map is free-form
    if isinstance(default, (ListConfig, list)):
        return list
    if type(default) is int:
        return float  # YAML writes 0 for a float default too (val_kwargs.temperature: 0): a number, not an integer
    return type(default) if type(default) in (bool, float, str) else None


def check_verl_value(verl_cfg: DictConfig, key: str, value: Any, version: str, in_process: bool) -> Problem | None:
    """A problem when `value` is not of the type verl declares for `key` (None when it is, or nothing is declared)."""
    declared = _declared(verl_cfg, key, in_process)
    default = OmegaConf.select(verl_cfg, key, default=_UNSET, throw_on_resolution_failure=False)
    if declared:
        tp, where = declared
    else:
        tp, where = _default_type(default), f"the type of its default ({show(default)}) in verl's config"
        if key in _PATH_OR_LIST:
            tp, where = str | list, "a path or a list of paths (verl/utils/dataset/rl_dataset.py:97-98)"
        if tp is None:
            return None
    if isinstance(value, (DictConfig, ListConfig)):
        value = OmegaConf.to_container(value, resolve=True)
    if _matches(value, tp):
        return None
    example = f", e.g. verl.{key}={show(default)}" if default not in (None, _UNSET) else ""
    return Problem(
        key=f"verl.{key}",
        message=f"verl {version} declares {key} as {_describe(tp)} ({where}); "
        f"this value is {'null' if value is None else type(value).__name__}",
        got=show(value),
        fix=f"give {_describe(tp)}{example}",
        rule="verl-type",
    )
