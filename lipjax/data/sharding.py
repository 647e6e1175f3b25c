"""Host-local numpy batches -> global jax.Arrays sharded along the batch: the one path that the
trainer, the evaluation, the benchmarks and the tests use.

Each process loads `global_batch // process_count` rows; `jax.make_array_from_process_local_data`
stitches them into one global array. Processes pick their length buckets independently (each
sees only its own clips), so with several processes the padded lengths are agreed first: one
`process_allgather` of a few integers per batch (the max over processes; zeros are padding and
masks stay False there). With one process nothing is exchanged. Imports only jax and numpy
(benchmarks use it without the input pipeline).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


def _on_device(v: np.ndarray) -> bool:
    """Host-only entries (`id`, `text`: string/object arrays) never go to devices."""
    return np.asarray(v).dtype.kind not in "OUS"


def batch_axes(mesh: jax.sharding.Mesh) -> tuple[str, ...]:
    """Mesh axes the batch dimension is split over: all of them (FSDP shards the batch too)."""
    return tuple(mesh.axis_names)


def batch_sharding(mesh: jax.sharding.Mesh, axes: Sequence[str] | None = None
                   ) -> NamedSharding:
    """Batch dimension split over `axes` (default `batch_axes(mesh)`), the rest replicated."""
    axes = batch_axes(mesh) if axes is None else tuple(axes)
    missing = [a for a in axes if a not in mesh.shape]
    if missing:
        raise ValueError(f"Mesh axes {dict(mesh.shape)} lack the batch axes {missing}.")
    return NamedSharding(mesh, P(axes if len(axes) > 1 else axes[0]))


def _padded_keys(batch: dict[str, np.ndarray]) -> list[str]:
    return sorted(k for k, v in batch.items() if _on_device(v) and np.ndim(v) > 1)


def pad_to(batch: dict[str, np.ndarray], dims: dict[str, Sequence[int]]
           ) -> dict[str, np.ndarray]:
    """Zero-pads the non-batch dims of each `batch[k]` up to `dims[k]` (others untouched)."""
    out = dict(batch)
    for k, target in dims.items():
        v = batch[k]
        pad = [(0, 0)] + [(0, int(t) - s) for t, s in zip(target, v.shape[1:], strict=True)]
        if any(p[1] < 0 for p in pad):
            raise ValueError(f"pad_to: {k} has shape {v.shape}, larger than the target "
                             f"{tuple(target)}")
        if any(p[1] for p in pad):
            out[k] = np.pad(v, pad)
    return out


def max_dims(batches: Sequence[dict[str, np.ndarray]]) -> dict[str, tuple[int, ...]]:
    """Per key, the elementwise max of the non-batch dims over `batches` (same keys each)."""
    keys = _padded_keys(batches[0])
    return {k: tuple(int(d) for d in np.max([b[k].shape[1:] for b in batches], axis=0))
            for k in keys}


def agree_shapes(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pads every array's non-batch dims to the max over processes (one small collective)."""
    keys = _padded_keys(batch)
    if jax.process_count() == 1 or not keys:
        return batch
    dims = np.concatenate([np.asarray(batch[k].shape[1:], np.int64) for k in keys])
    agreed = np.asarray(multihost_utils.process_allgather(dims)).reshape(-1, len(dims)).max(0)
    target, offset = {}, 0
    for k in keys:
        n = batch[k].ndim - 1
        target[k] = agreed[offset:offset + n]
        offset += n
    return pad_to(batch, target)


def to_global(batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh,
              axes: Sequence[str] | None = None, agreed: bool = False) -> dict[str, jax.Array]:
    """Drops host-only keys (`id`, `text`, any string/object array), agrees the padded shapes
    across processes (skipped when `agreed`, i.e. the caller ran `agree_shapes`) and makes each
    array global, batch split over `axes` (see `batch_sharding`)."""
    sharding = batch_sharding(mesh, axes)
    arrays = {k: np.asarray(v) for k, v in batch.items() if _on_device(v)}
    if not agreed:
        arrays = agree_shapes(arrays)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in arrays.items()}
