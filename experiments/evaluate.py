"""Scores a trained run on one split: WER and CER per language of its best checkpoint.

    python -m experiments.evaluate --workdir out/runs/finetune_it_memory
    python -m experiments.evaluate --config configs/finetune.py:small,lang=it,init=memory \
        --workdir out/runs/finetune_it_memory --split test --greedy

The checkpoint is the run's best on the validation split (experiments/recipe.py::best_step), so
the test split never takes part in a choice. Without --config the run's own saved config
(`{workdir}/config.json`) is used; with it, `--config.KEY=VALUE` overrides work as in training
(give the same ones, e.g. `--config.model.text_vocab=N`). Prints one line per data source (BUILDER/CONFIG), e.g.

    lipjax_nl/nl_video test: WER 41.2 %  CER 18.0 %  | beam WER 38.5 %  CER 16.9 %  (step 80)

greedy attention decoding, then (without --greedy) the joint CTC/attention beam search. A
language added by a package of yours runs as `python -m data_builders.<name> evaluate ...`, so
that it is registered.
"""

from __future__ import annotations

import sys

import ml_collections
from absl import app, flags

from experiments.saved_run import define_run_flags, quiet_logs, run_config


def define_flags() -> None:
    """The command's flags, defined only when the module runs as the command (so that its
    functions can be imported next to another command's)."""
    define_run_flags("configs/FILE.py:ARGS", "The run's directory (checkpoints, metrics).")
    flags.DEFINE_string("split", "test", "Split to score.")
    flags.DEFINE_bool("greedy", False, "Greedy decoding only (no beam search).")


def per_source(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """One config per data source (BUILDER/CONFIG, e.g. lipjax_nl/nl_video), so each language is scored
    alone."""
    from lipjax.data.pipeline import parse_sources

    out = {}
    for name, _ in parse_sources(config.data.sources):
        one = ml_collections.ConfigDict(config.to_dict())
        one.data.sources = [(name, 1.0)]
        out[name] = one
    return out


def evaluate_run(config: ml_collections.ConfigDict, workdir: str, split: str = "test",
                 beam: bool = True) -> dict[str, dict[str, float]]:
    """{source: scores} of `workdir`'s best-on-validation checkpoint (recipe.test_scores)."""
    from experiments.recipe import test_scores

    return {name: test_scores(one, workdir, beam=beam, split=split)
            for name, one in per_source(config).items()}


def format_scores(name: str, split: str, scores: dict[str, float]) -> str:
    """One line: greedy WER/CER, the beam search's when present, and the checkpoint step."""
    pct = lambda key: f"{100 * scores[key]:.1f} %"
    line = f"{name} {split}:"
    if "wer" in scores:
        line += f" WER {pct('wer')}  CER {pct('cer')}"
    else:  # a stage-1 run: unit error rate and language ID
        line += "  ".join(f" {k} {v:.4g}" for k, v in sorted(scores.items()) if k != "step")
    if "wer_beam" in scores:
        line += f"  | beam WER {pct('wer_beam')}  CER {pct('cer_beam')}"
    return line + f"  (step {scores['step']})"


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    quiet_logs()
    if not f.workdir:
        sys.exit("experiments.evaluate: --workdir is required (the run's folder)")
    config = run_config(f.config, f.workdir)
    for name, scores in evaluate_run(config, f.workdir, f.split, beam=not f.greedy).items():
        print(format_scores(name, f.split, scores), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
