"""Processes, device mesh and shardings: one code path from one CPU to many hosts.

The mesh comes from `train.mesh` (axis name -> size, -1 = the remaining devices). The batch is
split over every mesh axis (data parallel, and FSDP shards the batch too); parameters and the
optimizer state are replicated over `data` and, when an `fsdp` axis exists, each array is split
along its largest dimension that the `fsdp` size divides (small arrays stay replicated).
"""

from __future__ import annotations

import math
import os

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lipjax.data import sharding as sharding_lib

_DIST_ENV = ("JAX_COORDINATOR_ADDRESS", "COORDINATOR_ADDRESS")
FSDP_MIN_SIZE = 2**14  # arrays smaller than this many elements are replicated
# How long a CPU collective waits for its peers (XLA's default, 30 s, is shorter than the gap
# between two processes' compiles of one step on a busy machine).
CPU_COLLECTIVE_TIMEOUT_S = 300


def maybe_initialize_distributed(coordinator_address: str | None = None,
                                 num_processes: int | None = None,
                                 process_id: int | None = None,
                                 heartbeat_timeout_s: int | None = None,
                                 force: bool = False) -> None:
    """Calls `jax.distributed.initialize` when flags or the environment ask for several processes.

    TPU pods, SLURM and Open MPI are detected by jax itself (it reads their variables); on a
    plain box pass the coordinator, process count and id (flags or JAX_COORDINATOR_ADDRESS,
    JAX_NUM_PROCESSES, JAX_PROCESS_ID). `heartbeat_timeout_s` bounds how long the others wait
    for a process that died (jax's default is 100 s). `force`: initialize even when no
    variable says so (TPU VM pods, where jax asks the TPU metadata server).
    """
    addr = coordinator_address or next((os.environ[k] for k in _DIST_ENV if k in os.environ), None)
    if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and "JAX_PROCESS_ID" in os.environ:
        process_id = int(os.environ["JAX_PROCESS_ID"])
    cluster = any(k in os.environ for k in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE",
                                            "TPU_WORKER_HOSTNAMES",
                                            "MEGASCALE_COORDINATOR_ADDRESS"))
    if addr is None and not cluster and not force:
        return
    _set_cpu_collective_timeout()
    extra = {}
    if heartbeat_timeout_s:
        extra["heartbeat_timeout_seconds"] = int(heartbeat_timeout_s)
    if addr is not None:
        jax.distributed.initialize(coordinator_address=addr, num_processes=num_processes,
                                   process_id=process_id, **extra)
    else:
        jax.distributed.initialize(**extra)


def _set_cpu_collective_timeout() -> None:
    """CPU runs (JAX_PLATFORMS=cpu): `CPU_COLLECTIVE_TIMEOUT_S` for XLA's CPU collectives unless
    XLA_FLAGS already sets one; read when the backend starts, so call before any computation."""
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("JAX_PLATFORMS") == "cpu" and "collective_timeout_seconds" not in flags:
        os.environ["XLA_FLAGS"] = (f"{flags} --xla_cpu_collective_timeout_seconds="
                                   f"{CPU_COLLECTIVE_TIMEOUT_S}").strip()


def connect_collectives(mesh: Mesh) -> None:
    """Several CPU processes: one small all-reduce over every device of `mesh`, now, while the
    processes are in step. XLA:CPU connects a device set's gloo context on its first collective
    and waits a fixed 30 s for the peers to join; left to the first train step, the connection
    would wait on compiles that can end minutes apart on a busy machine (later collectives wait
    `CPU_COLLECTIVE_TIMEOUT_S`)."""
    if jax.process_count() == 1 or mesh.devices.flat[0].platform != "cpu":
        return
    spec = NamedSharding(mesh, P(tuple(mesh.axis_names)))
    ones = jax.make_array_from_callback((mesh.size,), spec,
                                        lambda index: np.ones((1,), np.float32))
    total = jax.jit(jax.numpy.sum, out_shardings=NamedSharding(mesh, P()))(ones)
    if int(total) != mesh.size:
        raise RuntimeError(f"collective check over {mesh.size} devices returned {total}")


def make_mesh(mesh_cfg: dict | None) -> Mesh:
    """A mesh over all devices; `mesh_cfg` maps axis names to sizes, one may be -1."""
    mesh_cfg = dict(mesh_cfg or {"data": -1})
    names, sizes = list(mesh_cfg), list(mesh_cfg.values())
    n = jax.device_count()
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1:
        raise ValueError(f"config train.mesh: at most one axis may be -1, found {mesh_cfg}")
    if -1 in sizes:
        if n % known:
            raise ValueError(f"config train.mesh: {n} devices not divisible by {known} "
                             f"({mesh_cfg})")
        sizes[sizes.index(-1)] = n // known
    if math.prod(sizes) != n:
        raise ValueError(f"config train.mesh: {mesh_cfg} needs {math.prod(sizes)} devices, "
                         f"found {n}")
    return jax.make_mesh(tuple(sizes), tuple(names),
                         axis_types=(jax.sharding.AxisType.Auto,) * len(names))


def batch_axes(mesh: Mesh) -> tuple[str, ...]:
    """Mesh axes the batch dimension is split over (all of them); see lipjax/data/sharding.py."""
    return sharding_lib.batch_axes(mesh)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return sharding_lib.batch_sharding(mesh)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def param_spec(shape: tuple[int, ...], mesh: Mesh) -> P:
    """The rule for one parameter / optimizer array (see module docstring)."""
    fsdp = mesh.shape.get("fsdp", 1)
    if fsdp == 1 or not shape or math.prod(shape) < FSDP_MIN_SIZE:
        return P()
    for dim in sorted(range(len(shape)), key=lambda d: -shape[d]):
        if shape[dim] % fsdp == 0:
            spec = [None] * len(shape)
            spec[dim] = "fsdp"
            return P(*spec)
    return P()


def state_shardings(abstract_state, mesh: Mesh):
    """NamedShardings for a pytree of ShapeDtypeStructs (model + optimizer state)."""
    return jax.tree.map(lambda x: NamedSharding(mesh, param_spec(tuple(x.shape), mesh)),
                        abstract_state)


def to_host_local(tree, mesh: Mesh):
    """Global batch-sharded outputs -> this process's rows as numpy (inverse of
    `lipjax.data.sharding.to_global`)."""
    from jax.experimental import multihost_utils

    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, jax.device_get(tree))
    spec = P(batch_axes(mesh))
    return jax.tree.map(
        lambda x: np.asarray(multihost_utils.global_array_to_host_local_array(
            x, mesh, spec if x.ndim else P())), tree)
