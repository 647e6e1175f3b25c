"""Train-step throughput: clips/s, frames/s, step time; on GPU also peak memory and MFU.

CPU (tiny and small configs, random batches)::

    python -m experiments.bench_train

GPU (auto_avsr-sized base model, bf16, 64 clips x 75 frames; MFU over a measured bf16 matmul)::

    python -m experiments.bench_train --configs base --batch 64 --frames 75 --dtype bfloat16

One train step = forward + backward + AdamW update of the real task (lipjax/tasks/<task>.py)
through the trainer's own `make_train_step`, on batches of random clips (the input pipeline is
not imported: this script needs only jax, flax, optax, orbax, numpy and ml_collections).
`--task finetune --no_memory --memory_layers 0` (the default) is the auto_avsr architecture:
ResNet-18 front end + Conformer + Transformer decoder with CTC. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TOKENS = 30  # target tokens per clip, as in the PyTorch reference measurement


def random_batch(batch: int, frames: int, config: Any, seed: int = 0) -> dict[str, np.ndarray]:
    """Every key of the pipeline's batch contract, random but well-formed, full length."""
    rng = np.random.default_rng(seed)
    from lipjax.models import factory

    unit_vocab = factory.unit_vocab(config)
    text_vocab = int(factory.get(config, "text_vocab"))
    crop = int(config.data.get("crop", 88))
    n_lang = len(factory.lmdecoder_languages(config))
    ones = lambda n: np.ones((batch, n), bool)
    units = rng.integers(0, unit_vocab, (batch, frames)).astype(np.int32)
    return {
        "video": rng.normal(size=(batch, frames, crop, crop)).astype(np.float32),
        "video_mask": ones(frames), "frame_mask": ones(frames),
        "units": units,
        "dedup_units": units[:, : max(frames // 2, 1)],
        "dedup_units_mask": ones(max(frames // 2, 1)),
        "phoneme_ids": rng.integers(2, min(unit_vocab, 40), (batch, TOKENS)).astype(np.int32),
        "phoneme_mask": ones(TOKENS),
        "tokens": rng.integers(4, text_vocab, (batch, TOKENS)).astype(np.int32),
        "token_mask": ones(TOKENS),
        "language": rng.integers(0, max(n_lang, 1), (batch,)).astype(np.int32),
        "valid": np.ones((batch,), bool),
    }


def make_config(args: argparse.Namespace, variant: str):
    """The task's config for `variant`, with the benchmark's overrides."""
    import importlib

    module = importlib.import_module(f"configs.{args.task}")
    arg = variant + ("" if args.task == "units_pretrain" else ",lang=en")
    if args.task == "finetune":
        arg += ",init=" + ("nomemory" if args.no_memory else "memory")
    config = module.get_config(arg)
    config.train.dtype = args.dtype or config.train.dtype
    config.train.remat = args.remat
    config.train.mesh = {"data": -1}
    if args.memory_layers >= 0:
        config.model.memory_layers = args.memory_layers
    if args.task != "units_pretrain":
        config.model.languages = ["en"]
    for item in args.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for k in parents:
            node = node[k]
        node[leaf] = type(node[leaf])(value) if leaf in node else value
    return config


def matmul_peak(dtype=jnp.bfloat16, n: int = 8192, iters: int = 20) -> float:
    """Dense matmul TFLOP/s on device 0 (the denominator of MFU)."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        f(a, b).block_until_ready()
        times.append(time.perf_counter() - t)
    return 2 * n**3 / statistics.median(times) / 1e12


def bench_one(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    from flax import nnx

    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.state import create_train_state
    from lipjax.train.step import make_train_step

    config = make_config(args, variant)
    batch_size = args.batch or config.data.batch_size
    frames = args.frames or {"tiny": 32, "small": 50, "base": 75}[variant]
    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.mesh)
    num_steps = args.warmup + args.steps
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, 10_000)
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        model.train()
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        step = make_train_step(task, schedules.make_schedule(config.optim, 10_000))
        batch = mesh_lib.to_global(random_batch(batch_size, frames, config), mesh)
        t0 = time.perf_counter()
        jax.block_until_ready(step(model, optimizer, rngs, batch)["loss"])
        compile_s = time.perf_counter() - t0
        times = []
        for i in range(num_steps):
            t = time.perf_counter()
            loss = step(model, optimizer, rngs, batch)["loss"]
            jax.block_until_ready(loss)
            if i >= args.warmup:
                times.append(time.perf_counter() - t)
    step_s = statistics.median(times)
    row = {"config": variant, "task": config.task, "dtype": config.train.dtype,
           "remat": config.train.remat, "batch": batch_size, "frames": frames,
           "params_M": n_params / 1e6, "compile_s": compile_s, "step_ms": step_s * 1e3,
           "clips_s": batch_size / step_s, "frames_s": batch_size * frames / step_s,
           "loss": float(loss)}
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and "peak_bytes_in_use" in stats:
        row["peak_GiB"] = stats["peak_bytes_in_use"] / 2**30
    try:
        from lipjax.models import flops

        per_frame = flops.flops_per_frame(config, frames=frames, tokens=TOKENS,
                                          batch=batch_size)
        row["TFLOP_s"] = per_frame * row["frames_s"] / 1e12
    except (ImportError, AttributeError, TypeError) as e:
        row["TFLOP_s_note"] = f"no flop count ({type(e).__name__})"
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="", help="comma-separated variants (tiny,small,base)")
    p.add_argument("--task", default="finetune", choices=("units_pretrain", "lmdecoder",
                                                          "finetune"))
    p.add_argument("--batch", type=int, default=0, help="clips per step (0: the config's)")
    p.add_argument("--frames", type=int, default=0, help="frames per clip (0: per variant)")
    p.add_argument("--dtype", default="", help="float32 | bfloat16 (default: the config's)")
    p.add_argument("--remat", action="store_true")
    p.add_argument("--no_memory", action=argparse.BooleanOptionalAction, default=True,
                   help="finetune without the memory read (auto_avsr architecture)")
    p.add_argument("--memory_layers", type=int, default=0, help="-1: the config's")
    p.add_argument("--set", action="append", default=[],
                   help="config override, e.g. --set model.frontend_width=8 --set data.crop=64")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--peak", action=argparse.BooleanOptionalAction, default=None,
                   help="measure the bf16 matmul peak (default: on GPU/TPU)")
    args = p.parse_args()
    platform = jax.devices()[0].platform
    variants = [v for v in (args.configs or ("base" if platform != "cpu" else "tiny,small"))
                .split(",") if v]
    peak = None
    if args.peak or (args.peak is None and platform != "cpu"):
        peak = matmul_peak()
    rows = [bench_one(args, v) for v in variants]
    print(f"\ndevice: {jax.devices()[0].device_kind} x{jax.device_count()} ({platform}), "
          f"jax {jax.__version__}" + (f", bf16 matmul peak {peak:.0f} TFLOP/s" if peak else ""))
    cols = ["config", "task", "dtype", "remat", "batch", "frames", "params_M", "compile_s",
            "step_ms", "clips_s", "frames_s", "loss", "peak_GiB", "TFLOP_s", "MFU_%"]
    for r in rows:
        if peak and "TFLOP_s" in r:
            r["MFU_%"] = 100 * r["TFLOP_s"] / peak
    cols = [c for c in cols if any(c in r for r in rows)]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c]:,.2f}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        print("| " + " | ".join(cells) + " |")
    for r in rows:
        if "TFLOP_s_note" in r:
            print(f"note ({r['config']}): {r['TFLOP_s_note']}")


if __name__ == "__main__":
    main()
