"""Weak scaling on CPU: per-process train-step throughput with 1 process vs 2 processes
(jax.distributed, gloo), each process pinned to its own core with one CPU device and the same
per-process batch. The ratio (2-process clips/s per process / 1-process clips/s) measures what
running several processes costs: the gradient all-reduce, the shape-agreement collective of
`lipjax.data.sharding.to_global`, and synchronisation. Goal: >= 90 %. A third run, two
independent 1-process runs side by side (one per core, no jax.distributed), separates what the
hardware costs when both cores work (shared caches, memory bandwidth, clock) from what the
processes' collectives cost; a fourth, the 2-process job with each process training its own
model on its own device, what the distributed runtime costs without a collective in the step.
Each 2-process job also times a cross-process all-reduce alone (64 floats; every parameter) and
counts the all-reduce ops of the compiled step.

    python -m experiments.bench_scaling [--steps 20] [--warmup 3] [--batch 4] [--frames 32]
        [--task units_pretrain] [--variant tiny] [--set model.norm=group] [--json out.json]

Batches are random (experiments/bench_train.py); in the 2-process run the processes alternate
frame lengths (process 1 sends fewer frames every other step) so the shape agreement pads real
mismatches. Needs as many cores as processes; other load on the machine lowers the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")


def worker(args: argparse.Namespace) -> None:
    os.sched_setaffinity(0, {args.core})
    import jax
    import numpy as np

    jax.config.update("jax_num_cpu_devices", 1)
    if args.nproc > 1:
        jax.distributed.initialize(coordinator_address=f"127.0.0.1:{args.port}",
                                   num_processes=args.nproc, process_id=args.pid)
    from flax import nnx

    from experiments.bench_train import make_config, random_batch
    from lipjax.data import sharding
    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.state import create_train_state
    from lipjax.train.step import make_train_step

    ns = argparse.Namespace(task=args.task, dtype="float32", remat=False, no_memory=True,
                            memory_layers=0, set=args.set)
    config = make_config(ns, args.variant)
    shared = args.nproc > 1 and not args.local  # one model over the processes' devices
    config.data.batch_size = args.batch * (args.nproc if shared else 1)
    task = get_task(config.task)
    if args.local:
        mesh = jax.sharding.Mesh(np.array(jax.local_devices()), ("data",))
    else:
        mesh = mesh_lib.make_mesh({"data": -1})
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, 10_000)
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        model.train()
        step = make_train_step(task, task.settings(config),
                               schedules.make_schedule(config.optim, 10_000))
        full = random_batch(args.batch, args.frames, config, seed=args.pid)
        short = random_batch(args.batch, args.frames - 8, config, seed=args.pid)
        collectives = {}
        if shared and args.pid == 0:
            # What the compiled step synchronises on: its cross-device reductions (static count;
            # one inside the scanned layers runs once per layer).
            # (`full` has the same shapes in every process; a shape agreement here, in one
            # process only, would pair with the other's first step and deadlock.)
            batch = sharding.to_global(full, mesh, agreed=True)
            hlo = step.lower(model, optimizer, rngs, batch).compile().as_text()
            collectives = {f"{op}_ops": hlo.count(f" {op}(") + hlo.count(f" {op}-start(")
                           for op in COLLECTIVES}
        step_times, agree_times = [], []
        for i in range(args.warmup + args.steps):
            host = short if (args.pid == 1 and shared and i % 2) else full
            t0 = time.perf_counter()
            agreed = sharding.agree_shapes(host) if shared else host
            t1 = time.perf_counter()
            batch = sharding.to_global(agreed, mesh, agreed=True)
            jax.block_until_ready(step(model, optimizer, rngs, batch)["loss"])
            t2 = time.perf_counter()
            if i >= args.warmup:
                step_times.append(t2 - t0)
                agree_times.append(t1 - t0)
        params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        reps = max(args.steps, 50)
        allreduce = {"allreduce_64_ms": allreduce_ms(mesh, 64, reps),
                     "allreduce_params_ms": allreduce_ms(mesh, params, reps)} if shared else {}
    step_s = statistics.median(step_times)
    with open(args.out, "w") as f:
        json.dump({"pid": args.pid, "nproc": args.nproc, "step_s": step_s,
                   "clips_per_s": args.batch / step_s, "params": params,
                   "agree_ms": 1e3 * statistics.median(agree_times), **allreduce,
                   **collectives}, f)
    if args.nproc > 1:
        jax.distributed.shutdown()


def allreduce_ms(mesh, size: int, reps: int) -> float:
    """Median time (ms) of one cross-process sum of `size` float32 per process (what a gradient
    all-reduce of `size` parameters costs, alone), through the same mesh as the train step."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    local = np.ones((1, size), np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local)
    total = jax.jit(lambda x: x.sum(0), out_shardings=NamedSharding(mesh, P()))
    jax.block_until_ready(total(x))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(total(x))
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def run(nproc: int, args: argparse.Namespace, tmp: str, mode: str = "shared") -> list[dict]:
    """`nproc` workers on their own cores: one jax.distributed job training one model
    (`shared`), the same job with each process training its own model on its own devices
    (`local`: the distributed runtime without cross-process collectives), or as many separate
    1-process jobs at the same time (`independent`)."""
    import portpicker

    port = portpicker.pick_unused_port()
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < nproc:
        raise SystemExit(f"bench_scaling: {nproc} processes need {nproc} cores, found {cores}")
    procs, outs = [], []
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    for pid in range(nproc):
        outs.append(os.path.join(tmp, f"{nproc}_{pid}_{mode}.json"))
        cmd = [sys.executable, "-m", "experiments.bench_scaling", "--worker", "--pid", str(pid),
               "--nproc", str(1 if mode == "independent" else nproc), "--port", str(port),
               "--core", str(cores[pid]),
               "--out", outs[-1], "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--batch", str(args.batch), "--frames", str(args.frames), "--task", args.task,
               "--variant", args.variant] + [f"--set={item}" for item in args.set]
        cmd += ["--local"] if mode == "local" else []
        procs.append(subprocess.Popen(cmd, env=env))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit(f"bench_scaling: a worker of the {nproc}-process run failed")
    results = []
    for path in outs:
        with open(path) as f:
            results.append(json.load(f))
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--batch", type=int, default=4, help="clips per process")
    p.add_argument("--frames", type=int, default=32)
    p.add_argument("--task", default="units_pretrain")
    p.add_argument("--variant", default="tiny")
    p.add_argument("--set", action="append", default=[],
                   help="config override KEY=VALUE (repeatable), e.g. model.norm=group")
    p.add_argument("--json", default=None)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("pid", "nproc", "port", "core"):
        p.add_argument(f"--{name}", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--out", default="", help=argparse.SUPPRESS)
    p.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        one = run(1, args, tmp)
        two = run(2, args, tmp)
        apart = run(2, args, tmp, mode="independent")
        local = run(2, args, tmp, mode="local")
    base = one[0]["clips_per_s"]
    per_process = statistics.mean(r["clips_per_s"] for r in two)
    independent = statistics.mean(r["clips_per_s"] for r in apart)
    summary = {"one_process_clips_s": base, "two_process_clips_s_per_process": per_process,
               "ratio": per_process / base, "step_s_1": one[0]["step_s"],
               "independent_clips_s_per_process": independent,
               "step_s_independent": max(r["step_s"] for r in apart),
               "ratio_independent": independent / base,
               "step_s_2": max(r["step_s"] for r in two),
               "step_s_local": max(r["step_s"] for r in local),
               "ratio_local": statistics.mean(r["clips_per_s"] for r in local) / base,
               "agree_ms_2": max(r["agree_ms"] for r in two),
               "params": one[0]["params"],
               "allreduce_params_ms_2": max(r["allreduce_params_ms"] for r in two),
               "allreduce_64_ms_2": max(r["allreduce_64_ms"] for r in two),
               **{f"{op}_ops": two[0][f"{op}_ops"] for op in COLLECTIVES},
               "config": f"{args.task}:{args.variant}, {args.batch} clips x {args.frames} "
                         f"frames per process, 1 CPU device + 1 core per process",
               "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


if __name__ == "__main__":
    main()
