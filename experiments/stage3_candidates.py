"""Stage-3 candidates for the joint reader, scored on validation only: does fine-tuning add?

    python -m experiments.stage3_candidates --workdir out/demo --name lr1e-3 --steps 120 \
        --lr 1e-3 [--freeze visual,unit_head] [--rehearsal 1.0] [--preset demo]

Trains the recipe's joint reader (stage 3 of every low-resource language in one model, the
posterior read) from the stage-1 and stage-2 runs a finished `experiments.demo` left in
`--workdir` (same `--preset`), with the recipe's settings except the ones given, into
`{workdir}/candidates/{name}`, evaluating every `--eval_every` steps and at step 0. Prints
the validation routed WER, labelled-language WER and language-ID accuracy at each evaluation:
whether the best step comes after step 0, and by how much. The test split is never read.
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
    parser.add_argument("--name", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--freeze", default=None,
                        help="comma-separated module paths (optim.freeze); '' = none")
    parser.add_argument("--rehearsal", type=float, default=0.0,
                        help="weight of stage 2's loss on audio-text batches mixed into each "
                             "step (lipjax/data/rehearsal.py); 0 = none")
    parser.add_argument("--eval_every", type=int, default=20)
    args = parser.parse_args(argv)
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
    return records


if __name__ == "__main__":
    main()
