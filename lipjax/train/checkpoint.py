"""Checkpoints: model, optimizer, RNG and input-pipeline state together, so a resume is exact.

Layout (Orbax CheckpointManager, one directory per saved step)::

    {workdir}/checkpoints/<step>/
        state/      item "state", Orbax StandardSave of the pytree
                      {"model":     nnx.state(model, nnx.Not(nnx.RngState)) as a pure dict:
                                    every parameter and BatchNorm statistic, no RNG state,
                       "optimizer": nnx.state(optimizer) as a pure dict (step count, Adam moments),
                       "rngs":      {"model": the model's dropout streams, "trainer": the
                                    trainer's nnx.Rngs} (keys stored as uint32 key data),
                       "step":      int, the number of finished train steps}
        data/       item "data", the input-pipeline state: one JSON file per data shard,
                      `shard_{s}-of-{n}.json`, each written by the process that reads the shard
                      (so a run resumes its exact stream with any process count that divides
                      n); other iterators: `process_{i}-of-{n}.json` (grain's format)
        _CHECKPOINT_METADATA, metrics in the manager's metadata when an evaluation ran.

Variables sit in "model" at the module's attribute path (list indices as ints), e.g.
`state["model"]["visual"]["encoder"]["layers"]["blocks"]["ff1"]["up"]["kernel"]`, whose leading
axis is the layer (models/stack.py). Later stages read them with
`restore_params(path)` (host numpy, no optimizer, works for any device count) and load them with
`nnx.replace_by_pure_dict(nnx.state(model, nnx.Not(nnx.RngState)), params)` or by sub-tree.

Kept: the latest `keep` checkpoints plus the best one by `train.best_metric` (`best_mode`).
Saves are asynchronous; `wait()` before exiting. A save killed midway leaves only Orbax's
temporary directory, which is never restored; a finished step that cannot be read (a truncated
or missing file) is reported by directory and moved aside to `corrupt_<step>`, and the previous
step is restored instead (`restore_latest`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

# Reading a run back (later stages, evaluation) lives with the tasks that load earlier stages;
# named here too because this module owns the layout.
from lipjax.tasks.common import resolve_step_dir as resolve_step_dir
from lipjax.tasks.common import restore_params as restore_params
from lipjax.tasks.common import restore_state_numpy as restore_state_numpy

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Data iterator state: grain's handler for grain iterators, the same file format otherwise.
# --------------------------------------------------------------------------------------------


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


class LoaderCheckpointHandler:
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


def _data_args(loader: Any, save: bool) -> ocp.args.CheckpointArgs:
    if _is_grain_iterator(loader) and not hasattr(loader, "shard_states"):
        import grain

        return (grain.checkpoint.CheckpointSave if save
                else grain.checkpoint.CheckpointRestore)(loader)
    return (LoaderSave if save else LoaderRestore)(loader)


def _first_line(error: BaseException) -> str:
    """The first informative line of an (often very long) Orbax/TensorStore error."""
    text = str(error).strip() or repr(error)
    return text.splitlines()[0][:500]


def _any_process(flag: bool) -> bool:
    """True if `flag` is true on any process (one small collective with several)."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def _barrier(name: str) -> None:
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------------------------
# The manager.
# --------------------------------------------------------------------------------------------


class Checkpointer:
    """Orbax CheckpointManager over `{workdir}/checkpoints` with items "state" and "data"."""

    def __init__(self, workdir: str, keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "min", async_save: bool = True):
        if best_mode not in ("min", "max"):
            raise ValueError(f"config train.best_mode: expected 'min' or 'max', "
                             f"found {best_mode!r}")
        self.directory = os.path.abspath(os.path.join(workdir, "checkpoints"))
        self.best_metric = best_metric
        policies = [ocp.checkpoint_managers.preservation_policy.LatestN(n=keep)]
        if best_metric:
            sign = 1.0 if best_mode == "max" else -1.0
            policies.append(ocp.checkpoint_managers.preservation_policy.BestN(
                get_metric_fn=lambda m: sign * float(m[best_metric]), n=1,
                keep_checkpoints_without_metrics=False))
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save, create=True)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "data"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, loader: Any | None,
             metrics: dict[str, float] | None = None) -> bool:
        """Starts an (async) save of `state` (pytree of jax.Arrays) and the loader position."""
        items = {"state": ocp.args.StandardSave(state)}
        if loader is not None:
            items["data"] = _data_args(loader, save=True)
        if metrics is not None and self.best_metric and self.best_metric not in metrics:
            metrics = None
        return self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                                 force=True)

    def restore(self, step: int, abstract_state: Any, loader: Any | None) -> Any:
        """Restores "state" onto the shardings of `abstract_state` and moves `loader` in place."""
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if loader is not None:
            items["data"] = _data_args(loader, save=False)
        return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

    def data_dir(self, step: int) -> epath.Path:
        return epath.Path(self.directory) / str(step) / "data"

    def restore_latest(self, abstract_state: Any, loader: Any | None
                       ) -> tuple[int, Any] | tuple[None, None]:
        """Restores the newest readable step: (step, state), or (None, None) without one.

        A step that fails to read (truncated or missing file, bad JSON) is logged with its
        directory and the reason, moved aside to `corrupt_<step>` (so the run can save that
        step again), and the previous step is tried. With several processes all of them agree
        on the outcome of each try (one small collective), so they fall back together.
        """
        for step in reversed(self.all_steps()):
            error = None
            try:
                state = self.restore(step, abstract_state, loader)
            except Exception as e:  # noqa: BLE001 - reported below, then the previous step
                error, state = e, None
            failed = _any_process(error is not None)
            if not failed:
                return step, state
            where = os.path.join(self.directory, str(step))
            reason = (f"{type(error).__name__}: {_first_line(error)}" if error is not None
                      else "another process could not read it")
            previous = [s for s in self.all_steps() if s < step]
            log.warning("checkpoint %s is unreadable (%s); moving it to corrupt_%d and %s",
                        where, reason, step, f"falling back to step {previous[-1]}"
                        if previous else "starting from scratch")
            if jax.process_index() == 0:
                target = os.path.join(self.directory, f"corrupt_{step}")
                if os.path.exists(target):
                    shutil.rmtree(target)
                os.rename(where, target)
            _barrier(f"lipjax_corrupt_{step}")
            self.manager.reload()
        return None, None

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
