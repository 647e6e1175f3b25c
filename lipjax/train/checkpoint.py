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
                      n; with stage 3's rehearsal, lipjax/data/rehearsal.py, each holds
                      both streams); other iterators: `process_{i}-of-{n}.json` (grain's format)
        config/config.json
                    item "config", the config of the run that saved this step (process 0
                      writes it), so a checkpoint names its config even after a later run
                      overwrote `{workdir}/config.json`
        _CHECKPOINT_METADATA, metrics in the manager's metadata when an evaluation ran.
    {workdir}/checkpoints/corrupt_<step>[.<n>]/
                    a step that could not be read, set aside by `restore_latest`

Variables sit in "model" at the module's attribute path (list indices as ints), e.g.
`state["model"]["visual"]["encoder"]["layers"]["blocks"]["ff1"]["up"]["kernel"]`, whose leading
axis is the layer (models/stack.py). Later stages read them with
`restore_params(path)` (host numpy, no optimizer, works for any device count) and load them with
`nnx.replace_by_pure_dict(nnx.state(model, nnx.Not(nnx.RngState)), params)` or by sub-tree.

Kept: the latest `keep` checkpoints plus the best one by `train.best_metric` (`best_mode`).
Saves are asynchronous; `wait()` before exiting. A save killed midway leaves only Orbax's
temporary directory, which is never restored.

Resume policy (`restore_latest`), newest step first:

* Corrupt: the step's files are damaged (its tree metadata cannot be read, or the restore
  fails: a truncated or missing file, bad JSON in the data item). The step is reported by
  directory, renamed to `corrupt_<step>` (`corrupt_<step>.1`, ... when that name is taken) and
  the previous step is tried, down to training from scratch. Nothing is ever deleted.
* Incompatible: the step reads fine but its saved tree (keys, shapes, dtypes, from the
  metadata, before any array is read) differs from the state the current config builds, e.g.
  after changing `model.dim` on a resumed workdir. The run stops with
  `IncompatibleCheckpointError`, which lists the differing keys and the config values that
  differ from the config that wrote the step; nothing on disk is touched.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

# Reading a run back (later stages, evaluation) lives with the tasks that load earlier stages;
# named here too because this module owns the layout.
from lipjax.tasks.common import resolve_step_dir as resolve_step_dir
from lipjax.tasks.common import restore_params as restore_params
from lipjax.tasks.common import restore_state_numpy as restore_state_numpy
from lipjax.train.compatibility import (  # noqa: F401 - also read from here
    ConfigSave,
    IncompatibleCheckpointError,
    LeafSpec,
    config_diff,
    leaf_specs,
    saved_config_path,
    saved_leaves,
    tree_mismatches,
)
from lipjax.train.loader_state import data_args, saved_num_shards  # noqa: F401

log = logging.getLogger(__name__)

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


class _NoMetricsNotice(logging.Filter):
    """Orbax warns at each save without metrics once best_fn is set; a step saved between
    evaluations (or at a preemption) has none by design."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "did not provide metrics" not in str(record.msg)


logging.getLogger("absl").addFilter(_NoMetricsNotice())


class Checkpointer:
    """Orbax CheckpointManager over `{workdir}/checkpoints` with items "state", "data" and
    "config".

    `config_json` is this run's config as JSON text (set by `restore_latest(config=...)`),
    saved with every step so that a later run can name the config that wrote a checkpoint
    that no longer fits; None saves no "config" item. Set it the same on every process.
    """

    def __init__(self, workdir: str, keep: int = 3, best_metric: str | None = None,
                 best_mode: str = "min", async_save: bool = True):
        self.config_json: str | None = None
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
        # best_fn is what makes Orbax write each step's metrics to disk (`<step>/metrics`) and
        # read them back when a run resumes; without it the BestN policy knew only the steps
        # saved since the restart and deleted the best step saved before it.
        best = {"best_fn": lambda m: sign * float(m[best_metric]), "best_mode": "max"} if (
            best_metric) else {}
        options = ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
            enable_async_checkpointing=async_save, create=True, **best)
        self.manager = ocp.CheckpointManager(self.directory, options=options,
                                             item_names=("state", "data", "config"))

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def save(self, step: int, state: Any, loader: Any | None,
             metrics: dict[str, float] | None = None) -> bool:
        """Starts an (async) save of `state` (pytree of jax.Arrays) and the loader position."""
        items = {"state": ocp.args.StandardSave(state)}
        if loader is not None:
            items["data"] = data_args(loader, save=True)
        if self.config_json is not None:
            items["config"] = ConfigSave(self.config_json)
        if metrics is not None and self.best_metric and self.best_metric not in metrics:
            metrics = None
        return self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics,
                                 force=True)

    def restore(self, step: int, abstract_state: Any, loader: Any | None) -> Any:
        """Restores "state" onto the shardings of `abstract_state` and moves `loader` in place."""
        items = {"state": ocp.args.StandardRestore(abstract_state)}
        if loader is not None:
            items["data"] = data_args(loader, save=False)
        return self.manager.restore(step, args=ocp.args.Composite(**items))["state"]

    def data_dir(self, step: int) -> epath.Path:
        return epath.Path(self.directory) / str(step) / "data"

    def restore_latest(self, abstract_state: Any, loader: Any | None,
                       config: ml_collections.ConfigDict | str | None = None,
                       written_by: str | None = None) -> tuple[int, Any] | tuple[None, None]:
        """Restores the newest readable step: (step, state), or (None, None) without one.

        `abstract_state` is the state the current config builds (arrays or
        jax.ShapeDtypeStruct). `config` is this run's config (a ConfigDict or its JSON): the
        incompatibility error lists the values that differ from the config that wrote the
        checkpoint, and later saves keep a copy of it (`config_json`). `written_by` is a config
        file to name for a checkpoint saved without its own copy, e.g. `{workdir}/config.json`
        before this run overwrites it.

        Each step, newest first, is first compared with `abstract_state` through its saved
        tree metadata: a step that does not fit (keys, shapes, dtypes) raises
        IncompatibleCheckpointError and changes nothing on disk (an older step of the same run
        would not fit either). A step whose metadata or files cannot be read is corrupt: it is
        logged with its directory and the reason, renamed to `corrupt_<step>` (so the run can
        save that step again; never deleted) and the previous step is tried. With several
        processes all of them agree on each outcome (one small collective), so they fall back
        or stop together.
        """
        if config is not None:
            self.config_json = config if isinstance(config, str) \
                else config.to_json_best_effort(indent=2)
        target = leaf_specs(abstract_state)
        for step in reversed(self.all_steps()):
            where = epath.Path(self.directory) / str(step)
            error, saved = None, None
            try:
                saved = saved_leaves(where / "state")
            except Exception as e:  # noqa: BLE001 - unreadable metadata: corrupt, below
                error = e
            if not _any_process(error is not None):
                mismatches = tree_mismatches(saved, target)
                if _any_process(bool(mismatches)):
                    raise IncompatibleCheckpointError(self._incompatible_message(
                        where, mismatches or ["(found by another process)"], written_by))
                try:
                    state = self.restore(step, abstract_state, loader)
                except Exception as e:  # noqa: BLE001 - damaged files: corrupt, below
                    error, state = e, None
                if not _any_process(error is not None):
                    return step, state
            self._set_aside(step, error)
        return None, None

    def _incompatible_message(self, where: epath.Path, mismatches: list[str],
                              written_by: str | None) -> str:
        lines = [f"checkpoint {where} does not fit the state this config builds "
                 "(checkpoint vs model, shape and dtype):"]
        lines += [f"  {line}" for line in mismatches]
        config = saved_config_path(where)
        if config.exists():
            lines.append(f"It was written by the config {config}.")
        elif written_by is not None and os.path.isfile(written_by):
            lines.append(f"It was saved without its config ({config} does not exist); the "
                         f"workdir's config before this run is {written_by}.")
            config = epath.Path(written_by)
        else:
            lines.append(f"The config that wrote it is unknown: {config} does not exist.")
            config = None
        if config is not None:
            try:
                diff = (config_diff(self.config_json, config.read_text())
                        if self.config_json is not None else None)
            except (OSError, ValueError) as e:
                lines.append(f"  (cannot compare the configs: {_first_line(e)})")
            else:
                if diff:
                    lines.append("Config values that differ:")
                    lines += [f"  {line}" for line in diff]
                elif diff is not None:
                    lines.append("  It has the same values as this run's config.")
        lines.append(f"Nothing on disk was changed. Fix: run with the values of the config that "
                     f"wrote the checkpoint, or use a new workdir (or move {self.directory} "
                     "away) to train this config from scratch.")
        return "\n".join(lines)

    def _set_aside(self, step: int, error: BaseException | None) -> None:
        """Renames an unreadable step to the first free `corrupt_<step>[.<n>]` (process 0)."""
        where = os.path.join(self.directory, str(step))
        reason = (f"{type(error).__name__}: {_first_line(error)}" if error is not None
                  else "another process could not read it")
        name, n = f"corrupt_{step}", 0
        while os.path.exists(os.path.join(self.directory, name)):
            n += 1
            name = f"corrupt_{step}.{n}"
        previous = [s for s in self.all_steps() if s < step]
        log.warning("checkpoint %s is unreadable (%s); moving it to %s and %s", where, reason,
                    name, f"falling back to step {previous[-1]}" if previous
                    else "starting from scratch")
        if jax.process_index() == 0:
            os.rename(where, os.path.join(self.directory, name))
        _barrier(f"lipjax_corrupt_{step}")
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
