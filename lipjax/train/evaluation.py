"""Evaluation: one pass of an eval loader on device, scored on the host as corpus-level rates.

Each host scores only its own clips. A task's `eval_counts` gives each metric as its two sums
(`lipjax.metrics.Counts`: edits and reference length, or correct and total predictions) over
the host's real rows (padding rows excluded); the sums are added across processes before they
are divided, so any number of hosts gives the number one host would.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from lipjax import metrics as metrics_lib
from lipjax.data import sharding
from lipjax.train import mesh as mesh_lib


def eval_outputs(model: nnx.Module, eval_step, config: ml_collections.ConfigDict,
                 mesh: jax.sharding.Mesh, loader: Any) -> tuple[list[dict], list[dict]]:
    """One pass of the eval `loader` through `eval_step` on device: this host's outputs and
    batches, each host batch padded to the shapes agreed across processes so that it lines up
    with its outputs. The model runs in eval mode and is left in eval mode: the caller sets
    the mode it trains in (`lipjax.train.modes.set_train_mode`)."""
    max_batches = config.train.get("eval_batches", 0) or math.inf
    outputs, batches = [], []
    model.eval()
    for i, batch in enumerate(loader):
        if i >= max_batches:
            break
        batch = sharding.agree_shapes(batch)
        out = eval_step(model, sharding.to_global(batch, mesh, agreed=True))
        outputs.append(mesh_lib.to_host_local(out, mesh))
        batches.append(batch)
    return outputs, batches


def host_counts(task: Any, outputs: list[dict], batches: list[dict],
                config: ml_collections.ConfigDict) -> dict[str, metrics_lib.Counts]:
    """This host's metric sums (task.eval_counts over its real rows)."""
    if not batches:
        return {}
    return {k: metrics_lib.Counts(*v) for k, v in
            task.eval_counts(outputs, batches, config).items()}


def sum_over_processes(counts: dict[str, metrics_lib.Counts]) -> dict[str, metrics_lib.Counts]:
    """Every process's sums added (the names must agree: every host runs the same task on the
    same number of eval batches)."""
    if jax.process_count() == 1:
        return counts
    from jax.experimental import multihost_utils

    names = sorted(counts)
    local = np.array([[counts[k].numerator, counts[k].denominator] for k in names],
                     np.float64).reshape(len(names), 2)
    total = np.asarray(multihost_utils.process_allgather(local)).sum(0)
    return {k: metrics_lib.Counts(float(total[i, 0]), float(total[i, 1]))
            for i, k in enumerate(names)}


def evaluate_counts(task: Any, model: nnx.Module, eval_step, config: ml_collections.ConfigDict,
                    mesh: jax.sharding.Mesh, loader: Any) -> dict[str, metrics_lib.Counts]:
    """`eval_outputs`, then every process's metric sums added."""
    outputs, batches = eval_outputs(model, eval_step, config, mesh, loader)
    return sum_over_processes(host_counts(task, outputs, batches, config))


def evaluate(task: Any, model: nnx.Module, eval_step, config: ml_collections.ConfigDict,
             mesh: jax.sharding.Mesh, loader: Any) -> dict[str, float]:
    """`eval_outputs`, then the corpus-level rates over every process's clips."""
    return metrics_lib.rates(evaluate_counts(task, model, eval_step, config, mesh, loader))


def evaluate_sources(task: Any, model: nnx.Module, eval_step,
                     config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh,
                     loaders: dict[str, Any]) -> dict[str, float]:
    """Each source's loader (by label, e.g. "lrs3/en/validation") evaluated alone: the rates
    over all of them together (their sums added, so a large source weighs by its size), and,
    with several sources, each source's rates as "<label>/<metric>"."""
    total: dict[str, metrics_lib.Counts] = {}
    scores: dict[str, float] = {}
    for label, loader in loaders.items():
        counts = evaluate_counts(task, model, eval_step, config, mesh, loader)
        for name, c in counts.items():
            before = total.get(name, metrics_lib.Counts(0.0, 0.0))
            total[name] = metrics_lib.Counts(before.numerator + c.numerator,
                                             before.denominator + c.denominator)
        if len(loaders) > 1:
            scores.update({f"{label}/{k}": v for k, v in metrics_lib.rates(counts).items()})
    return {**metrics_lib.rates(total), **scores}
