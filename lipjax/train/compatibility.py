"""Does a saved step fit the run about to resume from it? Decided from metadata alone.

Each step keeps the config that wrote it (item "config"); a step whose saved tree (keys, shapes,
dtypes) differs from the state the current config builds is incompatible, and the error names
the differing keys and the config values that changed (lipjax/train/checkpoint.py acts on it).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, NamedTuple

import jax
import orbax.checkpoint as ocp
from etils import epath

from lipjax.train.loader_state import JsonItemHandler

CONFIG_FILE = "config.json"


class ConfigCheckpointHandler(JsonItemHandler):
    """Orbax handler for item "config": the run's config text as `config.json`.

    Only process 0 writes (every process passes the same item, so all save the same items).
    `restore_latest` reads the file itself (`saved_config_path`): a resume needs it only to
    explain an incompatible checkpoint.
    """

    def save(self, directory: epath.Path, item: Any = None, args: Any = None) -> None:
        text = item if item is not None else args.text
        if jax.process_index() == 0 and text is not None:
            (epath.Path(directory) / CONFIG_FILE).write_text(text)

    def restore(self, directory: epath.Path, item: Any = None, args: Any = None) -> Any:
        path = epath.Path(directory) / CONFIG_FILE
        return path.read_text() if path.exists() else None


@ocp.args.register_with_handler(ConfigCheckpointHandler, for_save=True)
@dataclasses.dataclass
class ConfigSave(ocp.args.CheckpointArgs):
    text: str | None


@ocp.args.register_with_handler(ConfigCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class ConfigRestore(ocp.args.CheckpointArgs):
    """Orbax pairs every handler with a restore argument; the text comes back as a str."""


def saved_config_path(step_dir: epath.Path | str) -> epath.Path:
    """Where a step keeps the config that wrote it (absent in steps saved without one)."""
    return epath.Path(step_dir) / "config" / CONFIG_FILE


def _flat_config(value: Any, prefix: str = "") -> dict[str, Any]:
    """A config's JSON as {"model.dim": 64, ...} (lists and scalars are values)."""
    if not isinstance(value, dict):
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, child in value.items():
        flat.update(_flat_config(child, f"{prefix}.{key}" if prefix else str(key)))
    return flat


_ABSENT = object()


def config_diff(current: str, saved: str, limit: int = 30) -> list[str]:
    """Lines `model.dim: 32 (now) vs 64 (checkpoint)` for every config value that differs.

    Both arguments are config JSON texts; raises ValueError if either is not valid JSON."""
    now, then = _flat_config(json.loads(current)), _flat_config(json.loads(saved))

    def show(value: Any) -> str:
        return "absent" if value is _ABSENT else json.dumps(value)

    lines = [f"{key}: {show(now.get(key, _ABSENT))} (now) vs "
             f"{show(then.get(key, _ABSENT))} (checkpoint)"
             for key in sorted(set(now) | set(then))
             if now.get(key, _ABSENT) != then.get(key, _ABSENT)]
    if len(lines) > limit:
        lines = lines[:limit] + [f"... and {len(lines) - limit} more"]
    return lines


# --------------------------------------------------------------------------------------------
# Does a saved step fit the state the current config builds? Decided from metadata only.
# --------------------------------------------------------------------------------------------


class IncompatibleCheckpointError(ValueError):
    """A checkpoint reads fine but does not fit the model/optimizer the current config builds."""


class LeafSpec(NamedTuple):
    shape: tuple[int, ...] | None
    dtype: str | None


def _key_name(key: Any) -> str:
    for attr in ("key", "idx", "name"):  # DictKey, SequenceKey/FlattenedIndexKey, GetAttrKey
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_specs(tree: Any, is_leaf: Any = None) -> dict[str, LeafSpec]:
    """{"model/dense/kernel": (shape, dtype)} for every leaf (None where a leaf has none)."""
    flat = jax.tree_util.tree_flatten_with_path(tree, is_leaf=is_leaf)[0]
    leaves = {}
    for path, leaf in flat:
        shape, dtype = getattr(leaf, "shape", None), getattr(leaf, "dtype", None)
        leaves["/".join(_key_name(k) for k in path)] = LeafSpec(
            None if shape is None else tuple(int(d) for d in shape),
            None if dtype is None else str(dtype))
    return leaves


def saved_leaves(state_dir: epath.Path | str) -> dict[str, LeafSpec]:
    """Key path -> (shape, dtype) of every array in a saved "state" item, from its metadata
    file alone (no array is read); raises if the metadata is missing or damaged."""
    handler = ocp.StandardCheckpointHandler()
    try:
        metadata = handler.metadata(epath.Path(state_dir))
    finally:
        handler.close()
    tree = getattr(metadata, "tree", metadata)
    if not isinstance(tree, dict) or not tree:
        raise ValueError(f"{state_dir}: expected a tree of array metadata, found "
                         f"{type(tree).__name__}")
    return leaf_specs(tree, is_leaf=lambda x: x is not None and not isinstance(x, (dict, list,
                                                                                tuple)))


def tree_mismatches(saved: dict[str, LeafSpec], target: dict[str, LeafSpec],
                    limit: int = 20) -> list[str]:
    """Lines naming every key whose shape or dtype differs, then missing and unexpected keys
    (empty: the checkpoint fits). Leaves without a shape or dtype (a Python int) match any."""

    def show(leaf: LeafSpec) -> str:
        return f"{leaf.shape} {leaf.dtype}"

    differ = []
    for key in sorted(set(saved) & set(target)):
        a, b = saved[key], target[key]
        if None in (a.shape, b.shape, a.dtype, b.dtype):
            continue
        if a.shape != b.shape or a.dtype != b.dtype:
            differ.append(f"{key}: checkpoint {show(a)}, model {show(b)}")
    missing = sorted(set(target) - set(saved))
    unexpected = sorted(set(saved) - set(target))

    def cut(lines: list[str]) -> list[str]:
        return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit
                                else [])

    lines = cut(differ)
    if missing:
        lines.append(f"missing from the checkpoint ({len(missing)}): "
                     + ", ".join(cut(missing)))
    if unexpected:
        lines.append(f"in the checkpoint but not in the model ({len(unexpected)}): "
                     + ", ".join(cut(unexpected)))
    return lines
