"""Dry run of the paper-size recipe (configs/paper_lrs3_mtedx.py) before any real corpus exists.

    python -m experiments.dry_run [--workdir DIR] [--size base|small|tiny] [--json out.json]

1. Builds every corpus the recipe reads from the builders' own dummy data, with the recipe's
   build commands (`python -m data_builders NAME --manual_dir ... --data_dir D`), and the it/pt
   tokenizers (`python -m data_builders tokenizer LANG --sources ...`). The dummy data holds
   only some languages (mTEDx es, MLS es/pt, VoxPopuli fr, Common Voice it); the others are
   stand-ins: another language's dummy files copied into the real layout under the missing
   language's name (printed). Every config name and mixture entry is the recipe's own.
2. Opens each run's training mixture (lipjax/data/pipeline.py) with the recipe's data block
   (grain workers 0 here) and reads one batch at the recipe's batch size: clips read per
   source, and the time-mask settings the loader hands the clip transform.
3. Per stage, builds the model and compiles ONE train step (the trainer's `make_train_step`,
   accumulation and all) at the recipe's per-step batch padded to its largest buckets, from
   abstract state (nothing of the model is allocated), and prints: parameters, training FLOPs
   per step (lipjax/models/flops.py, analytic, at the `base` size whatever `--size`), the
   memory XLA plans for the step on this backend (`compiled.memory_analysis()`), the
   optimizer state counted analytically, and estimated training hours from the analytic
   FLOPs at an assumed MFU on one H100 and on a TPU v5e-8 (PEAKS, MFUS).

`--size base` compiles the recipe's own model; tiny/small compile a smaller one of the same
structure where a base compile is too slow, and the memory plan is then that size's (said so).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any
from unittest import mock

import jax
import numpy as np

from configs import paper_lrs3_mtedx as paper
from lipjax.schema import FPS

BUILDERS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "data_builders")
CV = "cv-corpus-17.0-2024-03-15"
# builder -> (path under its dummy_data, path under the stand-in manual_dir, language renamed
# from, to): what each corpus build reads. A language renamed is a stand-in.
STAND_INS: dict[str, list[tuple[str, str, str, str]]] = {
        "lrs3": [("lrs3", "lrs3", "", "")],
        "mtedx": [("muavic/es", f"muavic/{lang}", "es", lang) for lang in ("es", "fr", "it", "pt")]
        + [("mtedx/es-es", f"mtedx/{lang}-{lang}", "es", lang) for lang in ("it", "pt")],
        "mls": [("mls_spanish", "mls_italian", "es", "it"),
                ("mls_portuguese_opus", "mls_portuguese_opus", "", "")],
        "voxpopuli": [("transcribed_data/fr", "transcribed_data/it", "fr", "it")],
        "common_voice": [(f"{CV}/it", f"{CV}/it", "", ""), (f"{CV}/it", f"{CV}/pt", "it", "pt")],
}
# Step shapes for the estimates: a batch pads to its longest clip's bucket, and a batch of
# mixed lengths usually holds one long clip, so each step is counted at the largest buckets.
# Ids per second of speech are assumptions (fluent speech), not measurements.
PHONES_PER_SECOND = 15
TOKENS_PER_SECOND = 5  # 1000-piece SentencePiece text
FRAME_KEYS = ("video", "video_mask", "frame_mask", "units", "frame_phonemes")
PHONEME_KEYS = ("phoneme_ids", "phoneme_mask")
TEXT_KEYS = ("tokens", "token_mask")
# Assumed compute: dense bf16 peaks from the vendors' spec sheets, and two MFUs: a target and
# what a plain Flax version reached on a GPU (BENCHMARKS.md, the dry-run section).
PEAKS = {"H100 SXM": 989e12, "TPU v5e-8": 8 * 197e12}
MFUS = (0.35, 0.15)


def stand_in_manual_dirs(root: str) -> tuple[dict[str, str], list[str]]:
    """Copies the dummy data into one manual_dir per builder under `root`, renaming the
    stand-in languages (folders and mTEDx's `<split>.<lang>` transcripts); returns the dirs
    and a line per stand-in."""
    dirs, notes = {}, []
    for builder, copies in STAND_INS.items():
        manual = os.path.join(root, builder)
        for src, dst, old, new in copies:
            target = os.path.join(manual, dst)
            shutil.copytree(os.path.join(BUILDERS_DIR, builder, "dummy_data", src), target)
            if old != new:
                notes.append(f"{builder}: {dst} is a stand-in, the {old} dummy data")
                for folder, _, files in os.walk(target):
                    for name in files:
                        if name.endswith(f".{old}"):
                            os.rename(os.path.join(folder, name),
                                      os.path.join(folder, name[:-len(old)] + new))
        dirs[builder] = manual
    return dirs, notes


def run_command(command: list[str]) -> float:
    """Runs one recipe command with this interpreter; its wall seconds. Fails with its output."""
    start = time.perf_counter()
    argv = [sys.executable if command[0] == "python" else command[0]] + command[1:]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n"
                           f"{(result.stdout + result.stderr)[-3000:]}")
    return time.perf_counter() - start


def build_data(workdir: str) -> tuple[str, list[str]]:
    """Builds the corpora and tokenizers into `workdir`/data; the data_dir and what was done."""
    data_dir = os.path.join(workdir, "data")
    dirs, lines = stand_in_manual_dirs(os.path.join(workdir, "manual"))
    for command in (paper.build_commands(dirs, data_dir)
                    + [paper.tokenizer_command(lang, data_dir) for lang in paper.LOW_RESOURCE]):
        _progress(" ".join(command[2:5]))
        seconds = run_command(command)
        lines.append(f"{seconds:5.1f} s  {' '.join(command)}")
    return data_dir, lines


def read_mixture(config: Any) -> dict[str, Any]:
    """Opens the run's training loader and reads one batch: its device arrays, the clips each
    source gave, and the time-mask settings the loader passed the clip transform."""
    from lipjax.data import pipeline

    data = config.data.to_dict()
    data["num_workers"] = 0  # no grain worker processes on a small machine
    with mock.patch.object(pipeline, "ClipTransform", wraps=pipeline.ClipTransform) as made:
        loader = pipeline.make_loader(data, "train", train=True, seed=int(config.seed))
    batch = next(loader)
    passed = made.call_args.kwargs
    masks = {key: passed.get(key, "not passed") for key in
             ("time_masks", "time_mask_frames", "time_mask_per_second")}
    arrays = {k: v for k, v in batch.items()
              if isinstance(v, np.ndarray) and v.dtype != object}
    return {"arrays": arrays, "counts": loader.clip_counts(), "time_masks": masks}


def compile_config(config: Any, size: str) -> Any:
    """The run's config as compiled here: no data_dir (the paper's 1000-piece text vocabulary,
    not the dummy tokenizers'), and at `size` the factory's sizes for the model."""
    from lipjax.models import factory

    config = config.copy_and_resolve_references()
    config.data.data_dir = ""
    config.model.text_vocab = paper.TOKENIZER_PIECES
    if size != "base":
        model = config.model.to_dict()
        sizes = factory.SIZES[size]
        config.model = factory.model_config(size, **{k: v for k, v in model.items()
                                                     if k not in sizes and k != "size"})
        config.model.text_vocab = paper.TOKENIZER_PIECES
    return config


def step_shapes(config: Any, arrays: dict[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    """Each batch key's shape at the recipe's largest buckets (module constants)."""
    data = config.data
    frames = int(data.max_frames)
    seconds = frames / FPS
    phonemes = _round_up(PHONES_PER_SECOND * seconds, int(data.token_bucket))
    tokens = _round_up(TOKENS_PER_SECOND * seconds, int(data.text_bucket))
    shapes = {}
    for key, value in arrays.items():
        shape = list(value.shape)
        for keys, length in ((FRAME_KEYS, frames), (PHONEME_KEYS, phonemes),
                             (TEXT_KEYS, tokens)):
            if key in keys:
                shape[1] = length
        shapes[key] = tuple(shape)
    return shapes


def _round_up(value: float, multiple: int) -> int:
    return max(1, -(-int(np.ceil(value)) // multiple)) * multiple


def compile_step(config: Any, shapes: dict[str, tuple[int, ...]],
                 dtypes: dict[str, np.dtype]) -> dict[str, Any]:
    """Lowers and compiles one train step from abstract state and batch; params, seconds and
    XLA's memory plan (GiB)."""
    from flax import nnx

    from lipjax.data import sharding
    from lipjax.tasks import get_task
    from lipjax.train import mesh as mesh_lib
    from lipjax.train import schedules
    from lipjax.train.step import make_train_step

    task = get_task(config.task)
    mesh = mesh_lib.make_mesh(config.train.mesh)
    steps = int(config.train.num_steps)
    with jax.set_mesh(mesh):
        tx = schedules.make_optimizer(config.optim, steps)

        def make():
            model = task.create_model(config, nnx.Rngs(int(config.seed)))
            return (model, nnx.Optimizer(model, tx, wrt=nnx.Param),
                    nnx.Rngs(int(config.seed) + 1))

        model, optimizer, rngs = nnx.eval_shape(make)
        model.train()
        params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
        step = make_train_step(task, task.settings(config),
                               schedules.update_schedule(config.optim, steps))
        where = sharding.batch_sharding(mesh)
        batch = {k: jax.ShapeDtypeStruct(shape, dtypes[k], sharding=where)
                 for k, shape in shapes.items()}
        start = time.perf_counter()
        lowered = step.lower(model, optimizer, rngs, batch)
        lower_s = time.perf_counter() - start
        start = time.perf_counter()
        compiled = lowered.compile()
        compile_s = time.perf_counter() - start
    plan = compiled.memory_analysis()
    gib = lambda name: float(getattr(plan, name, 0) or 0) / 2**30
    return {"params": params, "lower_s": lower_s, "compile_s": compile_s,
            "arguments_GiB": gib("argument_size_in_bytes"), "temp_GiB": gib("temp_size_in_bytes"),
            "planned_GiB": gib("argument_size_in_bytes") + gib("temp_size_in_bytes")
            + gib("output_size_in_bytes") - gib("alias_size_in_bytes")}


def base_params(config: Any) -> int:
    """Parameters of the recipe's (base) model, from its abstract shapes."""
    from flax import nnx

    from lipjax.tasks import get_task

    task = get_task(config.task)
    model = nnx.eval_shape(lambda: task.create_model(config, nnx.Rngs(0)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def estimate(config: Any, shapes: dict[str, tuple[int, ...]], params: int) -> dict[str, Any]:
    """Analytic FLOPs per step and per run, optimizer state, and hours at PEAKS × MFUS."""
    from lipjax.models import flops

    batch, frames = shapes["frame_mask"]
    tokens = shapes["tokens"][1]
    units = shapes["phoneme_ids"][1]
    per_step = flops.flops_per_frame(config, frames=frames, tokens=tokens, batch=batch,
                                     units=units) * batch * frames
    steps = int(config.train.num_steps)
    accumulate = int(config.optim.get("accumulate_steps", 1) or 1)
    # float32 parameters, gradients and Adam's two moments, plus the accumulated gradients.
    state_gib = 4 * params * (4 + (accumulate > 1)) / 2**30
    hours = {f"{name} @{round(100 * mfu)}%": per_step * steps / (peak * mfu) / 3600
             for name, peak in PEAKS.items() for mfu in MFUS}
    return {"batch": batch, "frames": frames, "tokens": tokens, "units": units,
            "accumulate": accumulate, "updates": steps // accumulate, "steps": steps,
            "TFLOP_per_step": per_step / 1e12, "EFLOP_per_run": per_step * steps / 1e18,
            "state_GiB": state_gib, "hours": hours}


def dry_run(workdir: str, size: str = "base") -> dict[str, Any]:
    """Everything the module docstring lists; a dict of what it found (printed by `main`)."""
    report: dict[str, Any] = {"size": size, "machine": machine()}
    start = time.perf_counter()
    data_dir, report["data"] = build_data(workdir)
    report["data_s"] = time.perf_counter() - start
    report["runs"], report["stages"] = {}, {}
    for stage, lang in paper.runs():
        config = paper.get_config(f"stage={stage},data_dir={data_dir}"
                                  + (f",lang={lang}" if lang else ""))
        _progress(f"{paper.run_name(stage, lang)}: one batch of its training mixture")
        mixture = read_mixture(config)
        report["runs"][paper.run_name(stage, lang)] = {
                "counts": mixture["counts"], "time_masks": mixture["time_masks"]}
        if stage in report["stages"]:  # one compile per stage: its first run (stage 3: it)
            report["stages"][stage]["runs"] += 1
            continue
        arrays = mixture["arrays"]
        shapes = step_shapes(config, arrays)
        built = compile_config(config, size)
        _progress(f"{stage}: compiling one train step at size {size}")
        row = compile_step(built, shapes, {k: v.dtype for k, v in arrays.items()})
        base = compile_config(config, "base")
        params = row["params"] if size == "base" else base_params(base)
        report["stages"][stage] = {**estimate(base, shapes, params), **row, "base_params": params,
                                   "runs": 1}
    report["total_s"] = time.perf_counter() - start
    return report


def _progress(what: str) -> None:
    print(f".. {what}", file=sys.stderr, flush=True)


def machine() -> str:
    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"jax {jax.__version__}, {jax.devices()[0].platform}")


def step_text(stage: str, r: dict[str, Any]) -> str:
    """What one step reads, in the units its model reads."""
    if stage == "lmdecoder":
        return f"{r['batch']} × {r['units']} phones → {r['tokens']} tokens"
    text = f"{r['batch']} × {r['frames']} frames"
    return text + (f" → {r['tokens']} tokens" if stage == "finetune" else "")


def table(report: dict[str, Any]) -> str:
    """The per-stage markdown table and a total row."""
    keys = list(next(iter(report["stages"].values()))["hours"])
    head = ("| stage (runs) | params (M) | one step | steps per update → clips per update "
            "| updates | TFLOP / step | state: params, grads, Adam, accumulated (GiB) "
            "| XLA plan / step (GiB) | lower + compile (s) | "
            + " | ".join(f"h {k}" for k in keys) + " |")
    lines = [head, "|" + "---|" * (9 + len(keys))]
    totals = dict.fromkeys(keys, 0.0)
    for stage, r in report["stages"].items():
        for k in keys:
            totals[k] += r["hours"][k] * r["runs"]
        lines.append(
                f"| {stage} (×{r['runs']}) | {r['base_params'] / 1e6:.1f} | "
                f"{step_text(stage, r)} | {r['accumulate']} → {r['batch'] * r['accumulate']} | "
                f"{r['updates']:,} | {r['TFLOP_per_step']:.2f} | {r['state_GiB']:.1f} | "
                f"{r['planned_GiB']:.1f} (temp {r['temp_GiB']:.1f}) | "
                f"{r['lower_s'] + r['compile_s']:.0f} | "
                + " | ".join(f"{r['hours'][k]:.1f}" for k in keys) + " |")
    lines.append("| all runs |" + " |" * 8 + " " + " | ".join(f"**{totals[k]:.1f}**"
                                                            for k in keys) + " |")
    return "\n".join(lines)


def print_report(report: dict[str, Any]) -> None:
    print(f"\n== corpora and tokenizers ({report['data_s']:.0f} s)")
    print("\n".join(report["data"]))
    print("\n== training mixtures (one batch each)")
    for name, run in report["runs"].items():
        counts = ", ".join(f"{label} {c['read']} read / {c['dropped']} dropped"
                           for label, c in run["counts"].items())
        print(f"{name}: {counts}; time masks passed to the clip transform: {run['time_masks']}")
    print(f"\n== one train step per stage, compiled at size {report['size']} "
          f"({report['machine']})")
    print(table(report))
    print(f"\nFLOPs, state and hours are analytic for the base model; the XLA plan is "
          f"{report['size']}'s on this backend; total {report['total_s']:.0f} s.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", default="", help="where data is built (default: a temp dir, "
                        "removed after)")
    parser.add_argument("--size", default="base", choices=("base", "small", "tiny"))
    parser.add_argument("--json", default="", help="also write the report here")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="lipjax_dry_run_")
    try:
        report = dry_run(workdir, args.size)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print_report(report)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, default=str)


if __name__ == "__main__":
    main()
