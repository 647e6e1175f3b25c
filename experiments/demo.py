"""`make demo` / `make reproduce`: build the synthetic corpus, run the three-stage recipe,
print the results.

    python -m experiments.demo --data_dir out/data --workdir out/demo
    python -m experiments.demo --preset reproduce --data_dir out/data_reproduce \
        --workdir out/reproduce

Steps (each skipped when its output exists, so an interrupted run resumes where it stopped):
corpus (synthetic_lips, all five languages, + tokenizers) → statistics and preview image →
stage 1 → stage 2 (it, pt) → stage 3 (one model of it and pt whose language-ID head picks the
decoder: the proposed method; and it, pt × the preset's methods of experiments/recipe.py) →
test-split scores → results.md, results.json, learning_curves.png and one
memory_attention_<method>.png per memory-reading method and lid_confusion_<method>.png per
joint model in --workdir. `--preset` picks the
size: `demo` (minutes on 2 CPU cores, shows the recipe working) or `reproduce` (the size that
answers the paper's question, about an hour on 2 cores); `demo_ctc` and `reproduce_ctc` are the
same without the corpus's per-frame phone labels (stage 1 learns phonemes by CTC on
transcripts, as a real corpus allows). `--corpus_only` stops after the
preview. See experiments/recipe.py for what each stage is.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from experiments import corpus_preview, report
from experiments.jobs import Job, run_jobs
from experiments.recipe import (
    HIGH_RESOURCE,
    JOINT,
    LOW_RESOURCE,
    MEMORY_METHODS,
    METHODS,
    Recipe,
    init_process,
    low_resource_clip_counts,
    run_name,
)

STAGES = ("units_pretrain", "lmdecoder", "finetune")
# Two sizes of one recipe: training steps per stage (the demo's: the configs' defaults for the
# variant), the corpus's train clips as a multiple of the builder's demo sizes (validation and
# test keep theirs) and the mouths' resolution (`downsample`, configs/common.py; 0 = the
# variant's). The demo reads 22x22 mouths: its stage-1 step costs half of 44x44's for a few
# points of VER (results/README.md, "Stages 1 and 2 at demo size"), so more steps fit. Stage 3
# always trains on the low-resource languages' few clips; the proposed model is always the
# joint reader of it and pt (recipe.Recipe.joint), so the demo adds only the scratch baseline,
# and `reproduce` every method per language too (the paper's table). `frame_labels: False`
# withholds the synthetic corpus's per-frame phone labels from every stage
# (recipe.Recipe.frame_labels): the recipe as a corpus of transcripts only allows.
PRESETS = {
    "demo": {"steps": {}, "corpus_scale": 1,
             "methods": ("scratch",), "stage3_evals": 2, "downsample": 4},
    "reproduce": {"steps": {"units_pretrain": 2000, "lmdecoder": 1500, "finetune": 150},
                  "corpus_scale": 2, "methods": METHODS, "stage3_evals": 6, "downsample": 0},
}
PRESETS["demo_ctc"] = {**PRESETS["demo"], "frame_labels": False}
PRESETS["reproduce_ctc"] = {**PRESETS["reproduce"], "frame_labels": False,
                            "methods": ("posterior", "scratch", "memory")}


def parse_steps(text: str) -> dict[str, int]:
    steps = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, value = item.partition("=")
        if name not in STAGES or not value.isdigit():
            raise ValueError(f"--steps: expected stage=N with stage in {STAGES}, found {item!r}")
        steps[name] = int(value)
    return steps


def build_corpus(data_dir: str, workdir: str, sizes: int | None = None, scale: int = 1,
                 workers: int = 1) -> None:
    """Video of all five languages; audio-text (for the LMDecoders) and tokenizers of the
    low-resource ones, the only languages the recipe decodes to text. `sizes` sets every split
    of every config (quick checks); `scale` multiplies the demo's training clips of the
    high-resource video and the audio-text configs; `workers` configs are built side by side,
    each in its own process with its log in `{workdir}/corpus_logs` (a build leaves a core idle
    part of the time, so two at a time finish a little sooner)."""
    from data_builders.synthetic_lips import synthetic_lips_dataset_builder as sl

    def train_sizes(lang: str, modality: str) -> int | dict[str, int] | None:
        if sizes or scale == 1 or (modality == "video" and lang in LOW_RESOURCE):
            return sizes
        return {"train": scale * sl.demo_sizes(lang, modality)["train"]}

    configs = ([(lang, "video") for lang in HIGH_RESOURCE]
               + [(lang, "audio") for lang in LOW_RESOURCE]
               + [(lang, "video") for lang in LOW_RESOURCE])
    jobs = [Job(f"corpus_{lang}_{modality}", build_config,
                (lang, modality, data_dir, train_sizes(lang, modality)))
            for lang, modality in configs]
    run_jobs(jobs, workers=workers, log_dir=os.path.join(workdir, "corpus_logs"))
    rows = corpus_preview.statistics(data_dir)
    print(corpus_preview.format_table(rows))
    path = corpus_preview.preview(data_dir, os.path.join(workdir, "corpus_preview.png"))
    print(f"corpus preview: {path}")


def build_config(lang: str, modality: str, data_dir: str,
                 sizes: int | dict[str, int] | None) -> None:
    """One `synthetic_lips/{lang}_{modality}` config; an audio-text one also trains the
    language's tokenizer on its text."""
    from data_builders.synthetic_lips.build import build
    from lipjax.data import tokenizer

    build([lang], [modality], data_dir, sizes)
    if modality == "audio":
        tokenizer.ensure_tokenizer(lang, data_dir, config=f"{lang}_audio")


def render_demo_clip(recipe: Recipe, methods: tuple[str, ...], workdir: str) -> dict:
    """One unseen test clip read by the recipe's model (the joint one, which names the
    language itself, when it was trained), rendered with the true and the read text under the
    mouth (`test_clip.mp4`), and its plain mouth crop (`test_clip_mouth.mp4`) for
    `lipjax transcribe --roi`."""
    from experiments.render_clip import render_test_clip

    run = (("finetune", JOINT, recipe.joint[0]) if recipe.joint
           else ("finetune", LOW_RESOURCE[0], methods[0]))
    clip = render_test_clip(recipe.config(*run), recipe.run_dir(*run),
                            os.path.join(workdir, "test_clip.mp4"), greedy=True,
                            mouth_out=os.path.join(workdir, "test_clip_mouth.mp4"))
    return {**clip, "workdir": recipe.run_dir(*run)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="out/data")
    parser.add_argument("--workdir", default="out/demo")
    parser.add_argument("--variant", default="small", choices=("tiny", "small", "base"))
    parser.add_argument("--units", default="phoneme", choices=("acoustic", "phoneme"))
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--steps", default="", help="e.g. units_pretrain=300,finetune=200 "
                        "(overrides the preset's)")
    parser.add_argument("--methods", default="",
                        help=f"stage-3 methods, comma-separated, among {METHODS} (default: the "
                             "preset's)")
    parser.add_argument("--batch_size", type=int, default=0)
    parser.add_argument("--beam_size", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2,
                        help="runs trained side by side (each its own process); 1 = in turn, "
                             "in this process")
    parser.add_argument("--corpus_only", action="store_true")
    parser.add_argument("--corpus_size", type=int, default=0,
                        help="clips per split and config (0 = the demo sizes); for quick checks")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    cache_dir = os.path.abspath(os.path.join(args.workdir, "jax_cache"))
    init_process(cache_dir)
    start = time.time()
    timings: dict[str, float] = {}

    t = time.time()
    preset = PRESETS[args.preset]
    methods = tuple(m for m in args.methods.split(",") if m) or preset["methods"]
    if not methods or set(methods) - set(METHODS):
        parser.error(f"--methods: expected some of {METHODS}, found {methods!r}")
    build_corpus(args.data_dir, args.workdir, args.corpus_size or None, preset["corpus_scale"],
                 workers=args.workers)
    timings["corpus"] = time.time() - t
    if args.corpus_only:
        return {}

    recipe = Recipe(data_dir=args.data_dir, workdir=args.workdir, variant=args.variant,
                    units=args.units, steps={**preset["steps"], **parse_steps(args.steps)},
                    batch_size=args.batch_size, beam_size=args.beam_size, methods=methods,
                    stage3_evals=preset["stage3_evals"], downsample=preset["downsample"],
                    frame_labels=preset.get("frame_labels", True))
    t = time.time()
    done = run_jobs(recipe.jobs(), workers=args.workers,
                    log_dir=os.path.join(recipe.runs_dir, "logs"),
                    initializer=init_process, initargs=(cache_dir,))
    timings["runs"] = time.time() - t
    timings.update({k.removesuffix("/seconds"): v for k, v in done.items()
                    if k.endswith("/seconds")})
    mouths = recipe.stage1_config().data
    results = {"preset": args.preset, "variant": args.variant, "units": args.units,
               "phoneme_targets": recipe.phoneme_targets,  # stage 1's: frame CE or CTC
               "methods": list(methods),
               "steps": {stage: recipe.config(stage, LOW_RESOURCE[0], methods[0]).train.num_steps
                         for stage in STAGES},  # what ran, the configs' defaults included
               # the mouths every stage read (configs/common.py resolves the variant's default)
               "downsample": mouths.downsample, "crop": mouths.crop,
               "high_resource": list(HIGH_RESOURCE), "low_resource": list(LOW_RESOURCE),
               "low_resource_clips": low_resource_clip_counts(recipe),
               "units_pretrain": done["test_units_pretrain"],
               "lmdecoder": {lang: done["test_" + run_name("lmdecoder", lang)]
                             for lang in LOW_RESOURCE},
               "finetune": {lang: {m: done["test_" + run_name("finetune", lang, m)]
                                   for m in methods} for lang in LOW_RESOURCE},
               "joint": {m: done["test_" + run_name("finetune", JOINT, m)]
                         for m in recipe.joint},
               "zero_shot": {lang: {m: done[f"zero_shot_{lang}_{m}"] for m in MEMORY_METHODS
                                    if m in methods} for lang in LOW_RESOURCE},
               "memory_read": {m: {k: v for k, v in done[f"memory_attention_{m}"].items()
                                   if k.startswith("true_slot") or k == "slots"}
                               for m in recipe.reading_methods},
               "timings_s": timings, "workers": args.workers}
    results["seconds"] = time.time() - start
    results["run"] = {"command": "python -m experiments.demo " + " ".join(argv or sys.argv[1:]),
                      "machine": f"{platform.system()} {platform.machine()}, "
                                 f"{os.cpu_count()} cores, Python {platform.python_version()}",
                      "date": time.strftime("%Y-%m-%d")}
    report.write(results, args.workdir)
    run_dirs = {name: recipe.run_dir(*run) for name, run in recipe.runs().items()}
    report.learning_curves(run_dirs, os.path.join(args.workdir, "learning_curves.png"))
    for m in recipe.reading_methods:
        report.memory_heatmap(done[f"memory_attention_{m}"],
                              os.path.join(args.workdir, f"memory_attention_{m}.png"))
    for m, scores in results["joint"].items():
        report.language_confusion(scores["confusion"], LOW_RESOURCE,
                                  os.path.join(args.workdir, f"lid_confusion_{m}.png"))
    results["test_clip"] = render_demo_clip(recipe, methods, args.workdir)
    report.write(results, args.workdir)
    print(report.markdown(results))
    print(f"wall time: corpus {timings['corpus']:.0f} s, runs and scoring "
          f"{timings['runs']:.0f} s on {args.workers} worker(s); total {results['seconds']:.0f} s")
    print(f"outputs in {os.path.abspath(args.workdir)}")
    clip = results["test_clip"]
    print(f"an unseen test clip ({clip['language']}), read as {clip['read_as']}: "
          f"{clip['out']}\n  true: {clip['true']}\n  read: {clip['predicted']}\n"
          f"transcribe it yourself: lipjax transcribe --workdir {clip['workdir']} --roi "
          f"--video {clip['mouth_out']}")
    return results


if __name__ == "__main__":
    main()
