"""The training loop: one flat function, in sections, that a project can read top to bottom.

    python -m lipjax.train --config configs/units_pretrain.py:tiny --workdir /tmp/run

Every stage of the recipe runs through here; the task module (lipjax/tasks/<config.task>.py)
supplies the model, the loss and the evaluation. See lipjax/train/checkpoint.py for the layout.
"""

from __future__ import annotations

import logging
import math
import os
import signal
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
from lipjax.train.progress import Progress
from lipjax.train.state import checkpoint_tree, create_train_state, load_checkpoint_tree, reshard
from lipjax.train.step import make_eval_step, make_train_step
from lipjax.train.tb import MetricWriter
from lipjax.train.workdir import WorkdirLock, WorkdirLocked

log = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN/Inf; training stopped and nothing from that state was saved."""


def _set_mode(model: nnx.Module, train: bool) -> None:
    model.train() if train else model.eval()


def eval_outputs(model: nnx.Module, eval_step, config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh, loader: Any) -> tuple[list[dict], list[dict]]:
    """One pass of the eval `loader` through `eval_step` on device: this host's outputs and
    batches, each host batch padded to the shapes agreed across processes so that it lines up
    with its outputs."""
    max_batches = config.train.get("eval_batches", 0) or math.inf
    outputs, batches = [], []
    _set_mode(model, train=False)
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        batch = sharding.agree_shapes(batch)
        out = eval_step(model, sharding.to_global(batch, mesh, agreed=True))
        outputs.append(mesh_lib.to_host_local(out, mesh))
        batches.append(batch)
    _set_mode(model, train=True)
    return outputs, batches


def evaluate(task: Any, model: nnx.Module, eval_step, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, loader: Any) -> dict[str, float]:
    """`eval_outputs`, then task.eval_metrics on each host. With several processes each host
    scores its own shard; the metrics are averaged (weighted by the number of clips per host).
    """
    outputs, batches = eval_outputs(model, eval_step, config, mesh, loader)
    metrics = dict(task.eval_metrics(outputs, batches, config)) if batches else {}
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        names = sorted(metrics)
        count = sum(len(next(iter(b.values()))) for b in batches)
        local = np.array([count] + [metrics[k] * count for k in names], np.float64)
        total = multihost_utils.process_allgather(local).sum(0)
        metrics = {k: float(total[i + 1] / max(total[0], 1)) for i, k in enumerate(names)}
    return {k: float(v) for k, v in metrics.items()}


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


def _train(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
    from lipjax.data.pipeline import make_loader
    from lipjax.tasks import get_task

    # ----------------------------------------------------------------------------------------
    # Setup: task, mesh, optimizer.
    # ----------------------------------------------------------------------------------------
    tcfg = config.train
    num_steps = int(tcfg.num_steps)
    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(tcfg.get("mesh", None))
    mesh_lib.connect_collectives(mesh)
    os.makedirs(workdir, exist_ok=True)
    if jax.process_index() == 0:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            f.write(config.to_json_best_effort(indent=2))
    log.info("%d processes, %d devices, mesh %s", jax.process_count(), jax.device_count(),
             dict(mesh.shape))
    schedule = schedules.make_schedule(config.optim, num_steps)
    tx = schedules.make_optimizer(config.optim, num_steps)

    with jax.set_mesh(mesh):
        # ------------------------------------------------------------------------------------
        # Model + optimizer state, created sharded on the mesh.
        # ------------------------------------------------------------------------------------
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        log.info("model: %s parameters", f"{n_params:,}")

        # ------------------------------------------------------------------------------------
        # Input pipeline and checkpoints: resume model, optimizer and data stream together.
        # ------------------------------------------------------------------------------------
        ckpt = Checkpointer(workdir, keep=tcfg.get("keep", 3),
                            best_metric=tcfg.get("best_metric", None) or None,
                            best_mode=tcfg.get("best_mode", "min"),
                            async_save=tcfg.get("async_checkpoint", True))
        # A resumed run keeps the data sharding it was started with (its stream is defined by
        # it), whatever the process count now, when that count divides it.
        latest = ckpt.latest_step()
        shards = saved_num_shards(ckpt.data_dir(latest)) if latest is not None else None
        restore_data = shards is None or shards % jax.process_count() == 0
        if not restore_data:
            log.warning("checkpoint %s/%d has %d data shards, not divisible by %d processes: "
                        "restoring the model and optimizer, the input stream starts afresh",
                        ckpt.directory, latest, shards, jax.process_count())
            shards = None
        loader = make_loader(config.data, "train", train=True, seed=config.seed, mesh=mesh,
                             num_shards=shards)
        step, restored = ckpt.restore_latest(checkpoint_tree(model, optimizer, rngs, 0),
                                             loader if restore_data else None)
        if restored is not None:
            step = load_checkpoint_tree(model, optimizer, rngs, restored)
            log.info("resumed from %s/%d", ckpt.directory, step)
        else:
            step = 0
            if getattr(task, "load_pretrained", None) is not None:
                task.load_pretrained(model, config)
                reshard(model, mesh)
        it = loader if hasattr(loader, "__next__") else iter(loader)

        # ------------------------------------------------------------------------------------
        # Loop: step, NaN guard, log, evaluate, checkpoint; SIGTERM saves and exits.
        # ------------------------------------------------------------------------------------
        settings = task.settings(config)
        train_step = make_train_step(task, settings, schedule)
        eval_step = make_eval_step(task, settings)
        writer = MetricWriter(workdir, resume_step=step)
        global_batch = config.data.batch_size
        progress = Progress(step, num_steps, global_batch)
        stop = {"signal": None}

        def on_sigterm(signum, frame):
            stop["signal"] = signum

        previous_handler = None
        try:
            previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
        except ValueError:  # not the main thread: no preemption handling
            pass

        log_every, eval_every = tcfg.get("log_every", 50), tcfg.get("eval_every", 0)
        ckpt_every = tcfg.get("checkpoint_every", 0)
        eval_loader = None
        window: list[dict] = []
        pending: tuple[int, dict] | None = None
        last_eval: dict[str, float] = {}
        t_window = time.perf_counter()

        def check_finite(at_step: int, metrics: dict) -> None:
            loss = float(np.asarray(metrics["loss"]))
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss} at step {at_step} (config {config.task}, workdir {workdir});"
                    f" stopped without saving this state; last checkpoint: {ckpt.latest_step()}")

        def run_eval(at_step: int) -> dict[str, float]:
            nonlocal eval_loader
            if eval_loader is None:
                eval_loader = make_loader(config.data, tcfg.get("eval_split", "validation"),
                                          train=False, seed=config.seed, mesh=mesh)
            scores = evaluate(task, model, eval_step, config, mesh, eval_loader)
            writer.write(at_step, scores, "eval")
            progress.write(f"step {at_step} eval: " + ", ".join(
                f"{k}={v:.4g}" for k, v in sorted(scores.items())))
            return scores

        if step == 0 and eval_every and tcfg.get("eval_at_start", False):
            # The loaded (pretrained) weights are a candidate too: with few clips, training
            # can end worse than it started, and selection on validation should see that.
            last_eval = run_eval(0)
            ckpt.save(0, checkpoint_tree(model, optimizer, rngs, 0), loader, metrics=last_eval)

        _set_mode(model, train=True)
        try:
            while step < num_steps:
                try:
                    batch = next(it)
                except StopIteration as e:
                    raise RuntimeError(f"train loader of {config.task} ended at step {step}; "
                                       "expected an endless (repeating) train stream") from e
                metrics = train_step(model, optimizer, rngs, sharding.to_global(batch, mesh))
                step += 1
                if pending is not None:  # lag one step so the host never waits on the device
                    check_finite(*pending)
                pending = (step, metrics)
                window.append(metrics)
                progress.update()

                if step % log_every == 0 or step == num_steps:
                    check_finite(*pending)
                    host = jax.tree.map(lambda x: float(np.asarray(x)), window)
                    avg = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
                    dt = time.perf_counter() - t_window
                    avg["steps_per_s"] = len(window) / dt
                    avg["clips_per_s"] = len(window) * global_batch / dt
                    writer.write(step, avg, "train")
                    progress.postfix(avg)
                    window, t_window = [], time.perf_counter()

                evaluated = False
                if eval_every and (step % eval_every == 0 or step == num_steps):
                    check_finite(*pending)
                    last_eval = run_eval(step)
                    evaluated = True

                preempted = stop["signal"] is not None
                if jax.process_count() > 1:  # agree on a common step (checked at log steps)
                    from jax.experimental import multihost_utils

                    preempted = step % log_every == 0 and bool(np.any(
                        multihost_utils.process_allgather(np.array([preempted]))))
                if preempted or step == num_steps or (ckpt_every and step % ckpt_every == 0):
                    check_finite(*pending)
                    ckpt.save(step, checkpoint_tree(model, optimizer, rngs, step), loader,
                              metrics=last_eval if evaluated else None)
                if preempted:
                    progress.write(f"SIGTERM: saved checkpoint at step {step}, exiting")
                    break
        except BaseException:
            # With several processes a failure is often a dead peer: waiting for a save in
            # flight could block on it forever. That save stays in Orbax's temporary directory
            # and is never restored.
            if jax.process_count() > 1:
                ckpt = None
            raise
        finally:
            if ckpt is not None:
                ckpt.close()  # waits for async saves in flight (all from finite states)
            writer.close()
            progress.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)

    return {"step": step, "eval": last_eval, "preempted": stop["signal"] is not None,
            "checkpoint_dir": os.path.abspath(os.path.join(workdir, "checkpoints"))}
