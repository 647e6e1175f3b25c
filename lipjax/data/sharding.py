"""Host-local numpy batches -> global jax.Arrays sharded along the batch over the mesh.

Each process loads `global_batch // process_count` rows; `jax.make_array_from_process_local_data`
stitches them into one global array. Processes pick their length buckets independently, so with
several processes the padded lengths are first agreed (max over processes) - otherwise the
global shapes would disagree.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lipjax.data.transforms import HOST_KEYS


def batch_sharding(mesh: jax.sharding.Mesh, batch_axes: Sequence[str] | None = None
                   ) -> NamedSharding:
    """Batch dimension split over `batch_axes` (default: every mesh axis, i.e. P("data") on a
    data-only mesh; FSDP shards the batch too), everything else replicated."""
    batch_axes = tuple(mesh.axis_names) if batch_axes is None else tuple(batch_axes)
    missing = [a for a in batch_axes if a not in mesh.shape]
    if missing:
        raise ValueError(f"Mesh axes {dict(mesh.shape)} lack the batch axes {missing}.")
    axes = tuple(batch_axes)
    return NamedSharding(mesh, P(axes if len(axes) > 1 else axes[0]))


def agree_shapes(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pads every array's non-batch dims to the max over processes (zeros = padding/False)."""
    keys = sorted(k for k, v in batch.items() if k not in HOST_KEYS and np.ndim(v) > 1)
    if jax.process_count() == 1 or not keys:
        return batch
    dims = np.concatenate([np.asarray(batch[k].shape[1:], np.int64) for k in keys])
    agreed = np.asarray(multihost_utils.process_allgather(dims)).reshape(-1, len(dims)).max(0)
    out = dict(batch)
    offset = 0
    for k in keys:
        v = batch[k]
        target = agreed[offset:offset + v.ndim - 1]
        offset += v.ndim - 1
        pad = [(0, 0)] + [(0, int(t) - s) for t, s in zip(target, v.shape[1:], strict=True)]
        if any(p[1] for p in pad):
            out[k] = np.pad(v, pad)
    return out


def to_global(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh,
              batch_axes: Sequence[str] | None = None) -> dict[str, jax.Array]:
    """Drops host-only keys (`id`, `text`) and makes each array global, batch split over
    `batch_axes` (see `batch_sharding`)."""
    sharding = batch_sharding(mesh, batch_axes)
    batch = agree_shapes({k: v for k, v in batch.items() if k not in HOST_KEYS})
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
            for k, v in batch.items()}
