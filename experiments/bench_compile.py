"""Compile time of the train step (forward + backward + AdamW, the trainer's `make_train_step`)
for tiny / small / base configs on the CPU; nothing is executed but the compile.

    python -m experiments.bench_compile [--configs tiny,small,base] [--task finetune]
        [--dtype bfloat16] [--batch 2] [--frames 75] [--remat none,full,dots] [--json out.json]

`--task finetune` (default) is the auto_avsr architecture (front end + Conformer + decoder, no
memory); `--task units_pretrain` is stage 1. Each config is compiled in a fresh subprocess
(no in-memory or persistent cache), timing `jit(...).lower(...)` and `.compile()` apart.
`--remat` compiles each config once per activation-recomputation setting (config train.remat
and train.remat_policy, lipjax/models/stack.py) and reports the temporary memory XLA plans for
the step (`memory_analysis`, the activations the backward pass keeps), what a policy trades.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any


def compile_one(task: str, variant: str, dtype: str, batch: int, frames: int,
                remat: str = "none") -> dict[str, Any]:
    import jax
    from flax import nnx

    from experiments.bench_train import make_config, random_batch
    from lipjax.data import sharding
    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.state import create_train_state
    from lipjax.train.step import make_train_step

    args = argparse.Namespace(task=task, dtype=dtype, remat=False, no_memory=True,
                              memory_layers=0, set=[])
    config = make_config(args, variant)
    config.train.remat = remat != "none"
    config.train.remat_policy = remat if remat != "none" else "full"
    mesh = mesh_lib.make_mesh(config.train.mesh)
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, 10_000)
        t0 = time.perf_counter()
        module = get_task(config.task)
        model, optimizer, rngs = create_train_state(module, config, mesh, tx)
        init_s = time.perf_counter() - t0
        model.train()
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        step = make_train_step(module, module.settings(config),
                               schedules.make_schedule(config.optim, 10_000))
        batch = sharding.to_global(random_batch(batch, frames, config), mesh)
        t0, c0 = time.perf_counter(), time.process_time()
        lowered = step.lower(model, optimizer, rngs, batch) if hasattr(step, "lower") else None
        lower_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        temp_mb = None
        if lowered is not None:
            memory = lowered.compile().memory_analysis()
            temp_mb = getattr(memory, "temp_size_in_bytes", 0) / 2**20 if memory else None
        else:  # no AOT lowering on this nnx.jit: first call, blocking (includes one step)
            jax.block_until_ready(step(model, optimizer, rngs, batch)["loss"])
        compile_s = time.perf_counter() - t0
        cpu_s = time.process_time() - c0
    return {"task": task, "config": variant, "dtype": dtype, "remat": remat, "temp_MB": temp_mb,
            "params_M": n_params / 1e6,
            "init_s": init_s, "lower_s": lower_s, "compile_s": compile_s,
            "total_s": lower_s + compile_s,
            "lower_compile_cpu_s": cpu_s, "aot": lowered is not None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="tiny,small,base")
    p.add_argument("--task", default="finetune", choices=("finetune", "units_pretrain"))
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--frames", type=int, default=75)
    p.add_argument("--remat", default="none", help="comma-separated: none, full, dots, dots_all")
    p.add_argument("--json", default=None)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        row = compile_one(args.task, args.one, args.dtype, args.batch, args.frames, args.remat)
        print("RESULT " + json.dumps(row), flush=True)
        return
    rows = []
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    for variant, remat in ((v, r) for v in args.configs.split(",")
                           for r in args.remat.split(",")):
        cmd = [sys.executable, "-m", "experiments.bench_compile", "--one", variant,
               "--task", args.task, "--dtype", args.dtype, "--batch", str(args.batch),
               "--frames", str(args.frames), "--remat", remat]
        res = subprocess.run(cmd, capture_output=True, text=True, env=env)
        line = next((x for x in res.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            rows.append({"task": args.task, "config": variant, "status":
                         f"failed: {res.stderr.strip().splitlines()[-1:] or res.returncode}"})
        else:
            rows.append(json.loads(line[len("RESULT "):]))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"{time.strftime('%Y-%m-%d')}, batch {args.batch} x {args.frames} frames, "
          f"{args.dtype}\n")
    print("| task | config | remat | params (M) | lower (s) | compile (s) | total (s) | "
          "temp (MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "status" in r:
            print(f"| {r['task']} | {r['config']} | | | | | {r['status']} | |")
        else:
            temp = "" if r["temp_MB"] is None else f"{r['temp_MB']:.0f}"
            print(f"| {r['task']} | {r['config']} | {r['remat']} | {r['params_M']:.1f} | "
                  f"{r['lower_s']:.1f} | {r['compile_s']:.1f} | {r['total_s']:.1f} | {temp} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
