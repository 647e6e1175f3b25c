"""Train-step throughput: clips/s, frames/s, step time; on GPU also peak memory and MFU.

CPU (tiny and small configs, random batches)::

    python -m experiments.bench_train

GPU (auto_avsr-sized base model, bf16, 64 clips x 75 frames; MFU over a measured bf16 matmul)::

    python -m experiments.bench_train --task units_pretrain --configs base --batch 64 \
        --frames 75 --dtype bfloat16 [--remat] [--json out.json]

One train step = forward + backward + AdamW update of the real task (lipjax/tasks/<task>.py)
through the trainer's own `make_train_step`, on batches of random clips (the input pipeline is
not imported: this script needs only jax, flax, optax, orbax, numpy, ml_collections and jiwer,
which lipjax.metrics imports). `--task units_pretrain` is stage 1 (ResNet-18 front end +
Conformer + unit head + LID head); `--task finetune --no_memory --memory_layers 0` (the default)
is the auto_avsr architecture: ResNet-18 front end + Conformer + Transformer decoder with CTC.
Prints a markdown table; step time is the median over `--steps` timed steps after `--warmup`.

MFU = analytic training FLOPs (lipjax/models/flops.py: 3 × forward, remat recompute not counted)
/ step time / the bf16 matmul peak measured here (`--peak`, an n×n bf16 matmul, median); the
nominal spec peak (H100 SXM / H200: 989 dense bf16 TFLOP/s) gives a second column.

Other modes (experiments/gpu_check.sh drives them, one process each):
  --check: devices, versions, the bf16 peak, and correctness on the device (outputs at valid
           frames unchanged by padding, float32 at highest matmul precision; tiny train steps
           with finite loss and gradients; remat changes nothing);
  --report A.json B.json ...: merges the JSON files of earlier runs into one markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform as platform_lib
import statistics
import sys
import time
import traceback
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

TOKENS = 30  # target tokens per clip, as in the PyTorch reference measurement

# Dense bf16 tensor-core TFLOP/s from the vendor spec sheets (no sparsity), by device_kind.
NOMINAL_BF16 = (("GH200", 989.0), ("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0),
                ("H100", 989.0), ("H800", 989.0), ("A100", 312.0), ("L4", 121.0))

COLS = ["config", "task", "dtype", "remat", "batch", "frames", "params_M", "compile_s",
        "step_ms", "step_min_ms", "clips_s", "frames_s", "loss", "peak_GiB", "TFLOP_s",
        "MFU_%", "MFU_nominal_%", "status"]


def _ensure_jiwer() -> None:
    """lipjax.metrics imports jiwer at module level (only eval metrics use it); if it is not
    installed, a stub lets the train step import. Nothing here calls it."""
    try:
        import jiwer  # noqa: F401
    except ImportError:
        import types

        stub = types.ModuleType("jiwer")
        stub.__getattr__ = lambda name: (_ for _ in ()).throw(  # type: ignore[attr-defined]
            ImportError("jiwer is not installed (bench_train stub)"))
        sys.modules["jiwer"] = stub
        print("note: jiwer not installed; stubbed (eval metrics unavailable)", file=sys.stderr)


def nominal_peak(device_kind: str) -> float | None:
    return next((v for k, v in NOMINAL_BF16 if k.lower() in device_kind.lower()), None)


def device_info() -> dict[str, Any]:
    import flax
    import optax

    dev = jax.devices()[0]
    return {"device_kind": dev.device_kind, "platform": dev.platform,
            "device_count": jax.device_count(), "jax": jax.__version__,
            "flax": flax.__version__, "optax": optax.__version__,
            "python": platform_lib.python_version(),
            "nominal_bf16_TFLOP_s": nominal_peak(dev.device_kind)}


def target_len(frames: int) -> int:
    """Phoneme / text targets per clip: TOKENS, but short enough for CTC on short clips."""
    return max(1, min(TOKENS, frames // 2))


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
    n_phon = target_len(frames)
    return {
        "video": rng.normal(size=(batch, frames, crop, crop)).astype(np.float32),
        "video_mask": ones(frames), "frame_mask": ones(frames),
        "units": units,
        "dedup_units": units[:, : max(frames // 2, 1)],
        "dedup_units_mask": ones(max(frames // 2, 1)),
        "phoneme_ids": rng.integers(2, min(unit_vocab, 40), (batch, n_phon)).astype(np.int32),
        "phoneme_mask": ones(n_phon),
        "tokens": rng.integers(4, text_vocab, (batch, n_phon)).astype(np.int32),
        "token_mask": ones(n_phon),
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
    if args.memory_layers >= 0 and args.task != "units_pretrain":
        config.model.memory_layers = args.memory_layers
    if args.task != "units_pretrain":
        config.model.languages = ["en"]
        # Random batches: the paper's 1,000-piece vocabulary, no tokenizer to read it from.
        config.model.text_vocab = 1000
        config.data.data_dir = ""
    for item in args.set:
        key, value = item.split("=", 1)
        *parents, leaf = key.split(".")
        node = config
        for k in parents:
            node = node[k]
        node[leaf] = type(node[leaf])(value) if leaf in node else value
    return config


def matmul_peak(dtype=jnp.bfloat16, n: int = 8192, iters: int = 10, reps: int = 10) -> float:
    """Dense n×n matmul TFLOP/s on device 0 (the denominator of MFU): median over `iters`
    samples of `reps` back-to-back matmuls (so dispatch latency is not counted)."""
    a = jax.random.normal(jax.random.key(0), (n, n), dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    f(a, b).block_until_ready()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        outs = [f(a, b) for _ in range(reps)]
        jax.block_until_ready(outs)
        times.append((time.perf_counter() - t) / reps)
        del outs
    return 2 * n**3 / statistics.median(times) / 1e12


def peak_bytes() -> float | None:
    dev = jax.devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if stats and "peak_bytes_in_use" in stats:
        return float(stats["peak_bytes_in_use"])
    return None


def bench_one(args: argparse.Namespace, variant: str) -> dict[str, Any]:
    from flax import nnx

    from lipjax.data import sharding as sharding_lib
    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.state import create_train_state
    from lipjax.train.step import make_train_step

    config = make_config(args, variant)
    batch_size = args.batch or config.data.batch_size
    frames = args.frames or {"tiny": 32, "small": 75, "base": 75}[variant]
    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.mesh)
    num_steps = args.warmup + args.steps
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, 10_000)
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        model.train()
        n_params = sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        step = make_train_step(task, task.settings(config),
                               schedules.make_schedule(config.optim, 10_000))
        batch = sharding_lib.to_global(random_batch(batch_size, frames, config), mesh)
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
           "step_min_ms": min(times) * 1e3, "clips_s": batch_size / step_s,
           "frames_s": batch_size * frames / step_s, "loss": float(loss),
           "timed_steps": len(times)}
    pb = peak_bytes()
    if pb is not None:
        row["peak_GiB"] = pb / 2**30
    try:
        from lipjax.models import flops

        per_frame = flops.flops_per_frame(config, frames=frames, tokens=target_len(frames),
                                          batch=batch_size, units=target_len(frames))
        row["TFLOP_per_step"] = per_frame * batch_size * frames / 1e12
        row["TFLOP_s"] = per_frame * row["frames_s"] / 1e12
    except (ImportError, AttributeError, TypeError, KeyError) as e:
        row["TFLOP_s_note"] = f"no flop count ({type(e).__name__}: {e})"
    return row


# ----------------------------------------------------------------------------- correctness


def _tiny_config(task: str, dtype: str = "float32", remat: bool = False):
    """The task's tiny config at 24×24 crops, no dropout, a 12-unit / 20-token vocabulary."""
    import importlib

    from lipjax.models import factory

    module = importlib.import_module(f"configs.{task}")
    config = module.get_config("tiny" + ("" if task == "units_pretrain" else ",lang=en"))
    config.model = factory.model_config("tiny", unit_vocab=12, text_vocab=20,
                                        languages=("en",), num_languages=3, dropout=0.0)
    config.data.crop = 24
    config.train.dtype, config.train.remat = dtype, remat
    config.train.mesh = {"data": -1}
    return config


def _highest_precision():
    """float32 matmuls and convolutions at full precision (no TF32 on GPU)."""
    import contextlib

    ctx = getattr(jax, "default_matmul_precision", None)
    return ctx("highest") if ctx is not None else contextlib.nullcontext()


def check_padding() -> dict[str, Any]:
    """Outputs at valid frames are unchanged by padding (frontend + conformer + unit head +
    LID), BatchNorm in train mode (masked statistics) and eval mode; float32, highest matmul
    precision (TF32 would otherwise blur the comparison on GPU)."""
    from flax import nnx

    from lipjax.models import factory

    t_valid, t_pad, hw = 6, 9, 24
    rng = np.random.default_rng(0)
    valid = rng.normal(size=(1, t_valid, hw, hw)).astype(np.float32)
    junk = 50.0 * rng.normal(size=(1, t_pad - t_valid, hw, hw)).astype(np.float32)
    v, m = jnp.asarray(valid), jnp.ones((1, t_valid), bool)
    vp = jnp.asarray(np.concatenate([valid, junk], axis=1))
    mp = jnp.asarray(np.arange(t_pad)[None] < t_valid)
    worst = {}
    with _highest_precision():
        model = factory.visual_unit_model(_tiny_config("units_pretrain"), nnx.Rngs(0))
        fwd = nnx.jit(lambda mdl, x, k: mdl(x, k))
        for mode in ("train", "eval"):
            model.train() if mode == "train" else model.eval()
            a, b = fwd(model, v, m), fwd(model, vp, mp)
            for key in ("states", "unit_logits", "lid_logits"):
                x, y = np.asarray(a[key]), np.asarray(b[key])
                if key != "lid_logits":
                    y = y[:, :t_valid]
                scale = max(1.0, float(np.abs(x).max()))
                worst[f"{mode}/{key}"] = float(np.abs(x - y).max()) / scale
    err = max(worst.values())
    return {"name": "padding invariance (f32)", "ok": bool(err < 1e-3),
            "detail": f"max rel diff {err:.1e} (tol 1e-3)"}


def check_train_steps(task_name: str, dtype: str, steps: int = 3) -> dict[str, Any]:
    """A few tiny train steps: finite loss and grad norm; the loss moves."""
    from lipjax.data import sharding as sharding_lib
    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.state import create_train_state
    from lipjax.train.step import make_train_step

    config = _tiny_config(task_name, dtype)
    task = get_task(task_name)
    mesh = mesh_lib.make_mesh(config.train.mesh)
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, 100)
        model, optimizer, rngs = create_train_state(task, config, mesh, tx)
        model.train()
        step = make_train_step(task, task.settings(config),
                               schedules.make_schedule(config.optim, 100))
        batch = sharding_lib.to_global(random_batch(4, 16, config, seed=1), mesh)
        losses, gnorms = [], []
        for _ in range(steps):
            out = step(model, optimizer, rngs, batch)
            losses.append(float(out["loss"]))
            gnorms.append(float(out["grad_norm"]))
    finite = bool(np.all(np.isfinite(losses)) and np.all(np.isfinite(gnorms)))
    moved = losses[-1] != losses[0]
    return {"name": f"train steps {task_name} {dtype}", "ok": finite and moved,
            "detail": "loss " + " → ".join(f"{x:.3f}" for x in losses)
                      + f", grad_norm {gnorms[0]:.3g}"}


def check_remat() -> dict[str, Any]:
    """Remat recomputes the same function: same loss and gradients (float32, highest)."""
    from flax import nnx

    from lipjax.tasks import units_pretrain

    out = {}
    with _highest_precision():
        for remat in (False, True):
            config = _tiny_config("units_pretrain", remat=remat)
            batch = {k: jnp.asarray(x) for k, x in random_batch(2, 8, config, seed=2).items()}
            model = units_pretrain.create_model(config, nnx.Rngs(3))
            model.train()
            settings = units_pretrain.settings(config)
            grad_fn = nnx.value_and_grad(
                lambda mdl, b, s=settings: units_pretrain.loss_fn(mdl, b, None, s)[0])
            loss, grads = nnx.jit(grad_fn)(model, batch)
            out[remat] = (float(loss), [np.asarray(g) for g in jax.tree.leaves(grads)])
    (l0, g0), (l1, g1) = out[False], out[True]
    gdiff = max(float(np.abs(a - b).max()) / max(1.0, float(np.abs(a).max()))
                for a, b in zip(g0, g1, strict=True))
    ok = abs(l0 - l1) <= 1e-4 * max(1.0, abs(l0)) and gdiff < 1e-3
    return {"name": "remat == no remat (f32)", "ok": bool(ok),
            "detail": f"loss {l0:.5f} vs {l1:.5f}, max rel grad diff {gdiff:.1e}"}


def run_checks(args: argparse.Namespace) -> dict[str, Any]:
    info = device_info()
    print(f"devices: {jax.devices()}", flush=True)
    print(json.dumps(info), flush=True)
    result: dict[str, Any] = {"kind": "check", "device": info, "checks": []}
    if args.peak is not False:
        t = time.perf_counter()
        try:
            result["peak_TFLOP_s"] = matmul_peak(n=args.peak_n, iters=args.peak_iters)
            print(f"bf16 {args.peak_n}² matmul: {_fmt(result['peak_TFLOP_s'])} TFLOP/s "
                  f"({time.perf_counter() - t:.1f} s)", flush=True)
        except Exception as e:  # noqa: BLE001
            result["checks"].append({"name": "bf16 matmul peak", "ok": False,
                                     "detail": f"{type(e).__name__}: {e}"})
    wanted = set(args.checks.split(","))
    checks = [fn for name, fn in (("padding", check_padding), ("remat", check_remat))
              if name in wanted]
    if "train" in wanted:
        for task_name in filter(None, args.check_tasks.split(",")):
            for dtype in filter(None, args.check_dtypes.split(",")):
                checks.append(lambda t=task_name, d=dtype: check_train_steps(t, d))
    for fn in checks:
        t = time.perf_counter()
        try:
            res = fn()
        except Exception as e:  # noqa: BLE001 - report and go on with the other checks
            traceback.print_exc()
            res = {"name": getattr(fn, "__name__", "check"), "ok": False,
                   "detail": f"{type(e).__name__}: {str(e)[:200]}"}
        res["seconds"] = round(time.perf_counter() - t, 1)
        print(f"[{'PASS' if res['ok'] else 'FAIL'}] {res['name']}: {res['detail']} "
              f"({res['seconds']} s)", flush=True)
        result["checks"].append(res)
    return result


# ----------------------------------------------------------------------------- reporting


def add_mfu(rows: list[dict], peak: float | None, nominal: float | None) -> None:
    for r in rows:
        if "TFLOP_s" in r:
            if peak:
                r["MFU_%"] = 100 * r["TFLOP_s"] / peak
            if nominal:
                r["MFU_nominal_%"] = 100 * r["TFLOP_s"] / nominal


def _fmt(x: float) -> str:
    return f"{x:,.2f}" if x == 0 or abs(x) >= 1 else f"{x:.3g}"


def markdown_table(rows: list[dict]) -> str:
    cols = [c for c in COLS if any(c in r for r in rows)]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [_fmt(r[c]) if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def header(info: dict[str, Any], peak: float | None) -> str:
    nominal = info.get("nominal_bf16_TFLOP_s")
    s = (f"device: {info['device_kind']} x{info['device_count']} ({info['platform']}), "
         f"jax {info['jax']}, flax {info['flax']}, python {info['python']}")
    if peak:
        s += f"; bf16 matmul peak measured {_fmt(peak)} TFLOP/s"
    if nominal:
        s += f", nominal {nominal:.0f} TFLOP/s (dense bf16 spec)"
    return s


def report(paths: list[str], md_path: str | None, json_path: str | None = None) -> str:
    """One markdown report (and optionally one merged JSON) from the JSON files of --check and
    benchmark runs (missing or unreadable files are listed, not fatal)."""
    info, peak, checks, rows, notes = None, None, [], [], []
    for p in paths:
        try:
            with open(p) as f:
                d = json.load(f)
        except (OSError, ValueError) as e:
            notes.append(f"{os.path.basename(p)}: missing or unreadable ({type(e).__name__})")
            continue
        info = info or d.get("device")
        peak = peak or d.get("peak_TFLOP_s")
        checks += d.get("checks", [])
        rows += d.get("rows", [])
    for r in rows:  # re-derive MFU with the one peak of the report
        r.pop("MFU_%", None)
        r.pop("MFU_nominal_%", None)
    add_mfu(rows, peak, (info or {}).get("nominal_bf16_TFLOP_s"))
    out = [header(info, peak) if info else "device: unknown (no JSON read)", ""]
    if checks:
        out += ["| check | result | detail |", "|---|---|---|"]
        out += [f"| {c['name']} | {'PASS' if c['ok'] else 'FAIL'} | {c['detail']} |"
                for c in checks]
        out.append("")
    if rows:
        out += [markdown_table(rows), ""]
        out.append("step_ms: median over the timed steps after warm-up; frames_s = batch × "
                   "frames / step; TFLOP_s from lipjax/models/flops.py (train = 3 × forward, "
                   "remat recompute not counted); MFU_% over the measured matmul peak, "
                   "MFU_nominal_% over the spec.")
    out += [f"note: {n}" for n in notes]
    text = "\n".join(out).rstrip() + "\n"
    if md_path:
        with open(md_path, "w") as f:
            f.write(text)
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"device": info, "peak_TFLOP_s": peak, "checks": checks, "rows": rows,
                       "notes": notes}, f, indent=1)
    return text


# ----------------------------------------------------------------------------- main


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
    p.add_argument("--peak_n", type=int, default=8192, help="matmul size for --peak")
    p.add_argument("--peak_iters", type=int, default=10)
    p.add_argument("--peak_tflops", type=float, default=0.0,
                   help="use this measured peak instead of measuring (MFU denominator)")
    p.add_argument("--json", default="",
                   help="also write the results (with --report: the merged results) here")
    p.add_argument("--check", action="store_true", help="correctness checks (see docstring)")
    p.add_argument("--checks", default="padding,remat,train",
                   help="with --check: which of padding, remat, train")
    p.add_argument("--check_tasks", default="units_pretrain,finetune")
    p.add_argument("--check_dtypes", default="float32,bfloat16")
    p.add_argument("--report", nargs="+", default=None, metavar="JSON",
                   help="merge earlier --json files into one markdown table and exit")
    p.add_argument("--md", default="", help="with --report: also write the markdown here")
    args = p.parse_args()

    if args.report is not None:
        print(report(args.report, args.md or None, args.json or None), end="")
        return
    _ensure_jiwer()
    if args.check:
        result = run_checks(args)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
        sys.exit(0 if all(c["ok"] for c in result["checks"]) else 1)

    info = device_info()
    platform = info["platform"]
    variants = [v for v in (args.configs or ("base" if platform != "cpu" else "tiny,small"))
                .split(",") if v]
    peak = args.peak_tflops or None
    if peak is None and (args.peak or (args.peak is None and platform != "cpu")):
        peak = matmul_peak(n=args.peak_n, iters=args.peak_iters)
    rows = [bench_one(args, v) for v in variants]
    add_mfu(rows, peak, info["nominal_bf16_TFLOP_s"])
    print("\n" + header(info, peak))
    print(markdown_table(rows))
    for r in rows:
        if "TFLOP_s_note" in r:
            print(f"note ({r['config']}): {r['TFLOP_s_note']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"kind": "bench", "device": info, "peak_TFLOP_s": peak,
                       "args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
