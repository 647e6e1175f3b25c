"""The input pipeline's position as a checkpoint item ("data"), so a resume continues the
identical stream: grain's own handler for grain iterators, the same JSON file format otherwise,
one file per data shard for lipjax's sharded loader (lipjax/train/checkpoint.py owns the
layout)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import orbax.checkpoint as ocp
from etils import epath


def _dump(state: Any) -> str:
    if isinstance(state, bytes):
        return json.dumps({"__bytes__": state.decode()})
    return json.dumps(state, indent=2)


def _load(path: epath.Path) -> Any:
    try:
        state = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: input-pipeline state is not valid JSON ({e}); the file is "
                         "truncated or damaged") from e
    if isinstance(state, dict) and set(state) == {"__bytes__"}:
        state = state["__bytes__"].encode()
    return state


def saved_num_shards(data_dir: epath.Path | str) -> int | None:
    """The data-shard count a checkpoint's `data/` item was written with (None: not sharded)."""
    names = [p.name for p in epath.Path(data_dir).glob("shard_*-of-*.json")]
    counts = {int(n[:-len(".json")].rsplit("-of-", 1)[1]) for n in names}
    if len(counts) > 1:
        raise ValueError(f"{data_dir}: shard files of different counts {sorted(counts)}")
    return counts.pop() if counts else None


class JsonItemHandler:
    """What an Orbax handler of small JSON files needs besides `save` and `restore`: no tree
    structure or metadata to report, nothing to finalize or close."""

    def structure(self, directory: epath.Path) -> Any:
        return None

    def metadata(self, directory: epath.Path) -> Any:
        return None

    def finalize(self, directory: epath.Path) -> None:
        pass

    def close(self) -> None:
        pass

    @classmethod
    def typestr(cls) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"


class LoaderCheckpointHandler(JsonItemHandler):
    """Orbax handler for iterators with get_state()/set_state() (dict or bytes state).

    A sharded loader (`shard_states()`, lipjax.data.pipeline.Loader) writes one
    `shard_{s}-of-{n}.json` per local data shard; any other iterator writes
    `process_{i}-of-{n}.json` like grain's own handler.
    """

    def _path(self, directory: epath.Path) -> epath.Path:
        name = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
        return epath.Path(directory) / name

    @staticmethod
    def _shard_path(directory: epath.Path, shard: int, count: int) -> epath.Path:
        return epath.Path(directory) / f"shard_{shard}-of-{count}.json"

    def save(self, directory: epath.Path, item: Any = None, args: Any = None) -> None:
        item = item if item is not None else args.item
        if hasattr(item, "shard_states"):
            for shard, state in item.shard_states().items():
                self._shard_path(directory, shard, item.num_shards).write_text(_dump(state))
            return
        self._path(directory).write_text(_dump(item.get_state()))

    def restore(self, directory: epath.Path, item: Any = None, args: Any = None) -> Any:
        item = item if item is not None else args.item
        if hasattr(item, "shard_states"):
            paths = {s: self._shard_path(directory, s, item.num_shards) for s in item.shards}
            missing = [str(p) for p in paths.values() if not p.exists()]
            if missing:
                found = sorted(p.name for p in epath.Path(directory).iterdir())
                raise FileNotFoundError(
                    f"{directory}: expected the input-pipeline state of data shards "
                    f"{list(item.shards)} of {item.num_shards}, found {found}")
            item.set_shard_states({s: _load(p) for s, p in paths.items()})
            return item
        path = self._path(directory)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no input-pipeline state for this process "
                                    f"(saved with a different process count?)")
        item.set_state(_load(path))
        return item


@ocp.args.register_with_handler(LoaderCheckpointHandler, for_save=True)
@dataclasses.dataclass
class LoaderSave(ocp.args.CheckpointArgs):
    item: Any


@ocp.args.register_with_handler(LoaderCheckpointHandler, for_restore=True)
@dataclasses.dataclass
class LoaderRestore(ocp.args.CheckpointArgs):
    item: Any


def _is_grain_iterator(loader: Any) -> bool:
    try:
        import grain
        from grain import checkpoint as _  # noqa: F401
    except ImportError:
        return False
    types = tuple(t for t in (getattr(grain, "DatasetIterator", None),
                              getattr(grain, "DataLoaderIterator", None)) if t is not None)
    return bool(types) and isinstance(loader, types)


def data_args(loader: Any, save: bool) -> ocp.args.CheckpointArgs:
    if _is_grain_iterator(loader) and not hasattr(loader, "shard_states"):
        import grain

        return (grain.checkpoint.CheckpointSave if save
                else grain.checkpoint.CheckpointRestore)(loader)
    return (LoaderSave if save else LoaderRestore)(loader)
