"""The training loop, in named parts that a project can read top to bottom and extend.

    python -m lipjax.train --config configs/units_pretrain.py:tiny --workdir /tmp/run

Every stage of the recipe runs through here; the task module (lipjax/tasks/<config.task>.py)
supplies the model, the loss and the evaluation. The parts:
- `train`: the workdir lock around a run;
- `_train`: setup (task, mesh, optimizer, model created sharded), then `_resume`;
- `_resume`: model, optimizer, RNGs and input stream from the latest checkpoint, or the
  pretrained weights a task loads at step 0 (a checkpoint that does not fit the config stops
  the run: lipjax/train/checkpoint.py);
- `TrainLoop`: one train step at a time (`step`), the NaN guard, logging, evaluation
  (`evaluate_now`, lipjax/train/evaluation.py), the checkpoint policy (`CheckpointPolicy`) and
  preemption (lipjax/train/preemption.py). Frozen sub-trees run in eval mode
  (lipjax/train/modes.py).
See lipjax/train/checkpoint.py for the checkpoint layout.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from lipjax.data import sharding
from lipjax.train import mesh as mesh_lib
from lipjax.train import schedules
from lipjax.train.checkpoint import Checkpointer, saved_num_shards
from lipjax.train.evaluation import eval_outputs as eval_outputs
from lipjax.train.evaluation import evaluate as evaluate
from lipjax.train.evaluation import evaluate_sources
from lipjax.train.modes import set_train_mode
from lipjax.train.preemption import Preemption
from lipjax.train.progress import Progress
from lipjax.train.state import checkpoint_tree, create_train_state, load_checkpoint_tree, reshard
from lipjax.train.step import make_eval_step, make_train_step
from lipjax.train.tb import MetricWriter
from lipjax.train.workdir import WorkdirLock, WorkdirLocked

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/Inf; training stopped and nothing from that state was saved."""


def _any_process(flag: bool) -> bool:
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.array([flag]))))


def lock_workdir(workdir: str) -> WorkdirLock:
    """Process 0 takes the workdir's lock; every process raises WorkdirLocked if it failed."""
    lock = WorkdirLock(workdir)
    error = None
    if jax.process_index() == 0:
        try:
            lock.acquire()
        except WorkdirLocked as e:
            error = e
    if _any_process(error is not None):
        raise error or WorkdirLocked(f"{workdir}: process 0 could not lock the workdir "
                                     "(its log names the holder)")
    return lock


def train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    """Trains `config` in `workdir` (resuming from its latest checkpoint); returns a summary.

    Refuses (WorkdirLocked) while another live run holds `workdir`."""
    lock = lock_workdir(workdir)
    try:
        return _train(config, workdir)
    finally:
        lock.release()


# --------------------------------------------------------------------------------------------
# Setup and resumption.
# --------------------------------------------------------------------------------------------


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    from lipjax.tasks import get_task

    num_steps = int(config.train.num_steps)
    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.get("mesh", None))
    mesh_lib.connect_collectives(mesh)
    os.makedirs(workdir, exist_ok=True)
    log.info("%d processes, %d devices, mesh %s", jax.process_count(), jax.device_count(),
             dict(mesh.shape))
    schedule = schedules.update_schedule(config.optim, num_steps)
    tx = schedules.make_optimizer(config.optim, num_steps)

    with jax.set_mesh(mesh):
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        log.info("model: %s parameters", f"{n_params:,}")
        tcfg = config.train
        ckpt = Checkpointer(workdir, keep=tcfg.get("keep", 3),
                            best_metric=tcfg.get("best_metric", None) or None,
                            best_mode=tcfg.get("best_mode", "min"),
                            async_save=tcfg.get("async_checkpoint", True))
        try:
            step, loader = _resume(task, config, workdir, mesh, ckpt, model, optimizer, rngs)
            _write_config(config, workdir)
            loop = TrainLoop(task=task, config=config, workdir=workdir, mesh=mesh, ckpt=ckpt,
                             model=model, optimizer=optimizer, rngs=rngs, loader=loader,
                             step=step, schedule=schedule)
            return loop.run()
        except BaseException:
            # With several processes a failure is often a dead peer: waiting for a save in
            # flight could block on it forever. That save stays in Orbax's temporary directory
            # and is never restored.
            if jax.process_count() == 1:
                ckpt.close()
            raise


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    """The run's config as `config.json` (process 0), written once the checkpoints in the
    workdir are known to fit it, so a refused resume leaves the config that wrote them."""
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))


def _resume(task: Any, config: ml_collections.ConfigDict, workdir: str,
            mesh: jax.sharding.Mesh, ckpt: Checkpointer, model: nnx.Module,
            optimizer: nnx.Optimizer, rngs: nnx.Rngs) -> tuple[int, Any]:
    """(step, train loader): the latest readable checkpoint restored into the live objects
    (model, optimizer, RNGs and the loader's position), or step 0 with the task's pretrained
    weights loaded. A resumed run keeps the data sharding it started with (its stream is
    defined by it), whatever the process count now, when that count divides it."""
    from lipjax.data.rehearsal import train_loader

    latest = ckpt.latest_step()
    shards = saved_num_shards(ckpt.data_dir(latest)) if latest is not None else None
    restore_data = shards is None or shards % jax.process_count() == 0
    if not restore_data:
        log.warning("checkpoint %s/%d has %d data shards, not divisible by %d processes: "
                    "restoring the model and optimizer, the input stream starts afresh",
                    ckpt.directory, latest, shards, jax.process_count())
        shards = None
    loader = train_loader(config, mesh, num_shards=shards)
    step, restored = ckpt.restore_latest(
            checkpoint_tree(model, optimizer, rngs, 0), loader if restore_data else None,
            config=config, written_by=os.path.join(workdir, "config.json"))
    if restored is not None:
        step = load_checkpoint_tree(model, optimizer, rngs, restored)
        log.info("resumed from %s/%d", ckpt.directory, step)
        return step, loader
    if getattr(task, "load_pretrained", None) is not None:
        task.load_pretrained(model, config)
        reshard(model, mesh)
    return 0, loader


# --------------------------------------------------------------------------------------------
# The loop.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """When to save: every `every` steps (0: never on a schedule), at the last step, and when
    preempted."""

    every: int
    num_steps: int

    def due(self, step: int, preempted: bool) -> bool:
        return preempted or step == self.num_steps or bool(self.every and
                                                           step % self.every == 0)


class TrainLoop:
    """Steps from `step` to config.train.num_steps: train, NaN guard, log, evaluate,
    checkpoint; SIGTERM saves and exits."""

    def __init__(self, *, task: Any, config: ml_collections.ConfigDict, workdir: str,
                 mesh: jax.sharding.Mesh, ckpt: Checkpointer, model: nnx.Module,
                 optimizer: nnx.Optimizer, rngs: nnx.Rngs, loader: Any, step: int,
                 schedule: Any):
        tcfg = config.train
        self.task, self.config, self.workdir, self.mesh = task, config, workdir, mesh
        self.ckpt, self.model, self.optimizer, self.rngs = ckpt, model, optimizer, rngs
        self.loader = loader
        self.step = step
        self.num_steps = int(tcfg.num_steps)
        self.log_every = int(tcfg.get("log_every", 50))
        self.eval_every = int(tcfg.get("eval_every", 0))
        self.policy = CheckpointPolicy(int(tcfg.get("checkpoint_every", 0)), self.num_steps)
        self.freeze = tuple(config.optim.get("freeze", ()) or ())
        settings = task.settings(config)
        self.train_step = make_train_step(task, settings, schedule)
        self.eval_step = make_eval_step(task, settings)
        self.writer = MetricWriter(workdir, resume_step=step)
        self.progress = Progress(step, self.num_steps, config.data.batch_size)
        self.last_eval: dict[str, float] = {}
        self._eval_loaders: dict[str, Any] | None = None
        self._window: list[dict] = []
        self._dropped_logged = 0
        self._pending: tuple[int, dict] | None = None  # the newest step's metrics, not checked
        self._window_start = time.perf_counter()

    # -- the parts ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        preemption = Preemption()
        try:
            with preemption:
                if (self.step == 0 and self.eval_every
                        and self.config.train.get("eval_at_start", False)):
                    # The loaded (pretrained) weights are a candidate too: with few clips,
                    # training can end worse than it started, and selection on validation
                    # should see that.
                    self.last_eval = self.evaluate_now()
                    self.save(metrics=self.last_eval)
                set_train_mode(self.model, self.freeze)
                batches = self.loader if hasattr(self.loader, "__next__") else iter(self.loader)
                while self.step < self.num_steps:
                    self.train_one(batches)
                    if self.step % self.log_every == 0 or self.step == self.num_steps:
                        self.log_window()
                    evaluated = bool(self.eval_every) and (
                        self.step % self.eval_every == 0 or self.step == self.num_steps)
                    if evaluated:
                        self.check_finite()
                        self.last_eval = self.evaluate_now()
                        set_train_mode(self.model, self.freeze)
                    preempted = preemption.stop_now(self.step, self.log_every)
                    if self.policy.due(self.step, preempted):
                        self.save(metrics=self.last_eval if evaluated else None)
                    if preempted:
                        self.progress.write(f"SIGTERM: saved checkpoint at step {self.step}, "
                                            "exiting")
                        break
            self.ckpt.close()  # waits for async saves in flight (all from finite states)
        finally:
            self.writer.close()
            self.progress.close()
        return {"step": self.step, "eval": self.last_eval, "preempted": preemption.received,
                "checkpoint_dir": os.path.abspath(os.path.join(self.workdir, "checkpoints"))}

    def train_one(self, batches: Any) -> None:
        """One optimizer step on the next batch. The finiteness of a step's loss is checked
        one step later (or before anything reads the state), so the host never waits on the
        device."""
        try:
            batch = next(batches)
        except StopIteration as e:
            raise RuntimeError(f"train loader of {self.config.task} ended at step {self.step};"
                               " expected an endless (repeating) train stream") from e
        metrics = self.train_step(self.model, self.optimizer, self.rngs,
                                  sharding.to_global(batch, self.mesh))
        self.step += 1
        if self._pending is not None:
            self.check_finite()
        self._pending = (self.step, metrics)
        self._window.append(metrics)
        self.progress.update()

    def check_finite(self) -> None:
        if self._pending is None:
            return
        at_step, metrics = self._pending
        loss = float(np.asarray(metrics["loss"]))
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"loss is {loss} at step {at_step} (config {self.config.task}, workdir "
                f"{self.workdir}); stopped without saving this state; last checkpoint: "
                f"{self.ckpt.latest_step()}")

    def log_window(self) -> None:
        """Means of the steps since the last log line, with steps/s and clips/s."""
        self.check_finite()
        host = jax.tree.map(lambda x: float(np.asarray(x)), self._window)
        means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        seconds = time.perf_counter() - self._window_start
        means["steps_per_s"] = len(self._window) / seconds
        means["clips_per_s"] = len(self._window) * self.config.data.batch_size / seconds
        self.writer.write(self.step, {**means, **self.clip_counts()}, "train")
        self.progress.postfix(means)
        left_out = sum(m.get("ctc_left_out", 0.0) for m in host)
        if left_out:
            log.warning("steps %d-%d: %d examples left out of the CTC loss (fewer frames than "
                        "their labels need); metric ctc_left_out counts them per step",
                        self.step - len(host) + 1, self.step, int(left_out))
        self._window, self._window_start = [], time.perf_counter()

    def clip_counts(self) -> dict[str, float]:
        """Clips this process dropped (longer than data.max_frames) or cropped, per source,
        since the run (re)started, as train metrics; a warning when more were dropped."""
        counts = self.loader.clip_counts() if hasattr(self.loader, "clip_counts") else {}
        values = {f"data/{label}/{kind}": float(n) for label, c in counts.items()
                  for kind, n in c.items() if kind in ("dropped", "cropped") and n}
        dropped = {label: c for label, c in counts.items() if c.get("dropped")}
        new = sum(c["dropped"] for c in dropped.values())
        if new > self._dropped_logged:
            self._dropped_logged = new
            log.warning("clips longer than data.max_frames=%s dropped so far: %s (set "
                        "data.long_clips=crop or a larger data.max_frames to keep them)",
                        self.config.data.get("max_frames", None), ", ".join(
                            f"{label} {c['dropped']} of {c['read']}"
                            for label, c in dropped.items()))
        return values

    def evaluate_now(self) -> dict[str, float]:
        """Corpus-level metrics on config.train.eval_split over all sources, and per source
        ("<builder/config/split>/<metric>") when there are several; written and shown."""
        from lipjax.data.pipeline import eval_sources, make_loader

        split = self.config.train.get("eval_split", "validation")
        if self._eval_loaders is None:
            self._eval_loaders = {
                source.label(split): make_loader(self.config.data, split, train=False,
                                                 seed=self.config.seed, mesh=self.mesh,
                                                 source=source.index)
                for source in eval_sources(self.config.data, split)}
        scores = evaluate_sources(self.task, self.model, self.eval_step, self.config,
                                  self.mesh, self._eval_loaders)
        self.writer.write(self.step, scores, "eval")
        self.progress.write(f"step {self.step} eval: " + ", ".join(
            f"{k}={v:.4g}" for k, v in sorted(scores.items()) if "/" not in k))
        return scores

    def save(self, metrics: dict[str, float] | None) -> None:
        self.check_finite()
        self.ckpt.save(self.step, checkpoint_tree(self.model, self.optimizer, self.rngs,
                                                  self.step),
                       self.loader, metrics=metrics)
