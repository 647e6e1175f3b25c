"""`make demo`: build the synthetic corpus, run the three-stage recipe, print the results.

    python -m experiments.demo --data_dir out/data --workdir out/demo

Steps (each skipped when its output exists, so an interrupted demo resumes where it stopped):
corpus (synthetic_lips, all five languages, + tokenizers) → statistics and preview image →
stage 1 → stage 2 (it, pt) → stage 3 (it, pt × memory / nomemory / scratch) → test-split
scores → results.md, results.json, learning_curves.png, memory_attention.png in --workdir.
`--corpus_only` stops after the preview. See experiments/recipe.py for what each stage is.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from experiments import corpus_preview, report
from experiments.recipe import (
    HIGH_RESOURCE,
    LOW_RESOURCE,
    METHODS,
    Recipe,
    low_resource_clip_counts,
    memory_attention,
    run_stage,
    stage1_scores,
    test_scores,
)

STAGES = ("units_pretrain", "lmdecoder", "finetune")


def parse_steps(text: str) -> dict[str, int]:
    steps = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in STAGES or not value.isdigit():
            raise ValueError(f"--steps: expected stage=N with stage in {STAGES}, found {item!r}")
        steps[name] = int(value)
    return steps


def build_corpus(data_dir: str, workdir: str) -> None:
    from lipjax.synth.build import main as build_main

    build_main(["--data_dir", data_dir])
    rows = corpus_preview.statistics(data_dir)
    print(corpus_preview.format_table(rows))
    path = corpus_preview.preview(data_dir, os.path.join(workdir, "corpus_preview.png"))
    print(f"corpus preview: {path}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="out/data")
    parser.add_argument("--workdir", default="out/demo")
    parser.add_argument("--variant", default="small", choices=("tiny", "small", "base"))
    parser.add_argument("--units", default="acoustic", choices=("acoustic", "phoneme"))
    parser.add_argument("--steps", default="", help="e.g. units_pretrain=300,finetune=200")
    parser.add_argument("--batch_size", type=int, default=0)
    parser.add_argument("--beam_size", type=int, default=5)
    parser.add_argument("--corpus_only", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("absl", "orbax", "jax._src", "tensorflow_datasets", "grain"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    os.makedirs(args.workdir, exist_ok=True)
    # Runs of the same shapes (it and pt, baselines a and b) reuse each other's XLA programs.
    import jax

    jax.config.update("jax_compilation_cache_dir", os.path.join(args.workdir, "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    start = time.time()
    timings: dict[str, float] = {}

    t = time.time()
    build_corpus(args.data_dir, args.workdir)
    timings["corpus"] = time.time() - t
    if args.corpus_only:
        return {}

    recipe = Recipe(data_dir=args.data_dir, workdir=args.workdir, variant=args.variant,
                    units=args.units, steps=parse_steps(args.steps),
                    batch_size=args.batch_size, beam_size=args.beam_size)
    run_dirs = {}
    t = time.time()
    run_dirs["units_pretrain"] = recipe.run_dir("units_pretrain")
    run_stage(recipe.stage1_config(), run_dirs["units_pretrain"])
    timings["stage1"] = time.time() - t
    t = time.time()
    for lang in LOW_RESOURCE:
        run_dirs[f"lmdecoder_{lang}"] = recipe.run_dir("lmdecoder", lang)
        run_stage(recipe.stage2_config(lang), run_dirs[f"lmdecoder_{lang}"])
    timings["stage2"] = time.time() - t
    t = time.time()
    for lang in LOW_RESOURCE:
        for method in METHODS:
            name = f"finetune_{lang}_{method}"
            run_dirs[name] = recipe.run_dir("finetune", lang, method)
            run_stage(recipe.stage3_config(lang, method), run_dirs[name])
    timings["stage3"] = time.time() - t

    t = time.time()
    results = {"variant": args.variant, "units": args.units,
               "high_resource": list(HIGH_RESOURCE), "low_resource": list(LOW_RESOURCE),
               "low_resource_clips": low_resource_clip_counts(recipe),
               "units_pretrain": stage1_scores(recipe), "lmdecoder": {}, "finetune": {}}
    for lang in LOW_RESOURCE:
        results["lmdecoder"][lang] = test_scores(recipe.stage2_config(lang),
                                                 run_dirs[f"lmdecoder_{lang}"], beam=True)
        results["finetune"][lang] = {
            method: test_scores(recipe.stage3_config(lang, method),
                                run_dirs[f"finetune_{lang}_{method}"], beam=True)
            for method in METHODS}
    timings["evaluation"] = time.time() - t
    results["timings_s"] = timings
    results["seconds"] = time.time() - start
    report.write(results, args.workdir)
    report.learning_curves(run_dirs, os.path.join(args.workdir, "learning_curves.png"))
    report.memory_heatmap(memory_attention(recipe, LOW_RESOURCE[0]),
                          os.path.join(args.workdir, "memory_attention.png"))
    print(report.markdown(results))
    print("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"outputs in {os.path.abspath(args.workdir)}")
    return results


if __name__ == "__main__":
    main()
