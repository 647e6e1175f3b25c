"""Stage-3 candidates for the joint reader, scored on validation only: does fine-tuning add?

    python -m experiments.stage3_candidates --workdir out/demo --name lr1e-3 --steps 120 \
        --lr 1e-3 [--freeze visual,unit_head] [--rehearsal 1.0] [--preset demo]
    python -m experiments.stage3_candidates --workdir out/demo --plot candidates.png

Trains the recipe's joint reader (stage 3 of every low-resource language in one model, the
posterior read) from the stage-1 and stage-2 runs a finished `experiments.demo` left in
`--workdir` (same `--preset`), with the recipe's settings except the ones given, into
`{workdir}/candidates/{name}`, evaluating every `--eval_every` steps and at step 0. Prints
the validation routed WER, labelled-language WER and language-ID accuracy at each evaluation:
whether the best step comes after step 0, and by how much. The test split is never read.
`--plot` draws the validation curves of the recipe's joint run and of every candidate.
"""

from __future__ import annotations

import argparse
import os

from experiments.demo import PRESETS
from experiments.recipe import JOINT, Recipe, init_process, run_stage
from lipjax.train.tb import read_metrics


def main(argv: list[str] | None = None) -> list[dict]:
    """Trains the candidate; returns its validation records (read_metrics), step 0 first."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="out/demo", help="A finished demo's --workdir.")
    parser.add_argument("--data_dir", default="out/data")
    parser.add_argument("--preset", default="demo", choices=sorted(PRESETS))
    parser.add_argument("--variant", default="small", choices=("tiny", "small", "base"),
                        help="the demo's --variant")
    parser.add_argument("--name", default="", help="the candidate (its run directory)")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--plot", default="",
                        help="PNG path: draw the validation curves of the recipe's joint run "
                             "and of every candidate in --workdir (after training --name, if "
                             "given)")
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--freeze", default=None,
                        help="comma-separated module paths (optim.freeze); '' = none")
    parser.add_argument("--rehearsal", type=float, default=0.0,
                        help="weight of stage 2's loss on audio-text batches mixed into each "
                             "step (lipjax/data/rehearsal.py); 0 = none")
    parser.add_argument("--eval_every", type=int, default=20)
    args = parser.parse_args(argv)
    if not args.name:
        if not args.plot:
            parser.error("--name and --steps (train a candidate) and/or --plot PATH")
        plot_curves(args.workdir, args.plot)
        return []
    if args.steps <= 0:
        parser.error("--steps: expected a positive number of training steps")
    preset = PRESETS[args.preset]
    init_process(os.path.join(args.workdir, "jax_cache"))
    recipe = Recipe(data_dir=args.data_dir, workdir=args.workdir, variant=args.variant,
                    units="phoneme", steps=preset["steps"], methods=("posterior",),
                    stage3_evals=preset["stage3_evals"], downsample=preset["downsample"],
                    frame_labels=preset.get("frame_labels", True), rehearsal=args.rehearsal)
    config = recipe.config("finetune", JOINT, "posterior")
    config.train.num_steps = args.steps
    config.train.eval_every = config.train.checkpoint_every = args.eval_every
    if args.lr is not None:
        config.optim.lr = args.lr
    if args.freeze is not None:
        config.optim.freeze = [p for p in args.freeze.split(",") if p]
    workdir = os.path.join(args.workdir, "candidates", args.name)
    run_stage(config, workdir)
    records = read_metrics(workdir, "eval")
    print("| step | WER routed | WER labelled language | LID accuracy |\n|---|---|---|---|")
    for r in records:
        print(f"| {r['step']} | {100 * r['wer_routed']:.1f} | {100 * r['wer']:.1f} | "
              f"{100 * r['lid_accuracy']:.1f} |")
    if args.plot:
        plot_curves(args.workdir, args.plot)
    return records


def plot_curves(workdir: str, out: str) -> str:
    """Validation WER routed by the language-ID head against the step, per language, for the
    recipe's joint run and each candidate in `workdir`: whether fine-tuning goes below step 0."""
    import glob

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {"the recipe": os.path.join(workdir, "runs", f"finetune_{JOINT}_posterior")}
    runs.update({os.path.basename(d): d
                 for d in sorted(glob.glob(os.path.join(workdir, "candidates", "*")))})
    codes = JOINT.split("+")
    fig, axes = plt.subplots(1, len(codes) + 1, figsize=(5 * (len(codes) + 1), 3.8),
                             sharey=True)
    for name, run in runs.items():
        records = read_metrics(run, "eval") if os.path.isdir(run) else []
        if not records:
            continue
        steps = [r["step"] for r in records]
        panels = [("wer_routed", "all languages")] + [
            (next(k for k in records[0] if k.endswith(f"/{c}_video/validation/wer_routed")), c)
            for c in codes]
        for ax, (key, title) in zip(axes, panels, strict=True):
            ax.plot(steps, [100 * r[key] for r in records], marker="o", label=name)
            ax.set_title(f"validation WER routed, {title}")
            ax.set_xlabel("stage-3 step")
            ax.grid(alpha=0.3)
    axes[0].set_ylabel("WER %")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    main()
