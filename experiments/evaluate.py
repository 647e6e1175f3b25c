"""Scores a trained run on one split: WER and CER per source and per language of its best
checkpoint, and every utterance's reference and hypotheses in a jsonl file beside them.

    lipjax evaluate --workdir out/runs/finetune_it_memory
    python -m experiments.evaluate --workdir out/runs/finetune_it_memory
    python -m experiments.evaluate --config configs/finetune.py:small,lang=it,init=memory \
        --workdir out/runs/finetune_it_memory --split test --greedy --jsonl out/it_test.jsonl

The checkpoint is the run's best on the validation split (experiments/recipe.py::best_step), so
the test split never takes part in a choice. Without --config the run's own saved config
(`{workdir}/config.json`) is used; with it, `--config.KEY=VALUE` overrides work as in training
(give the same ones, e.g. `--config.model.text_vocab=N`). Prints one line per data source
(BUILDER/CONFIG), e.g.

    lipjax_nl/nl_video test: WER 41.2 %  CER 18.0 %  | beam WER 38.5 %  CER 16.9 %  (step 80)

greedy attention decoding, then (without --greedy) the joint CTC/attention beam search; then
one line per language over all its sources. A run that writes text (stages 2 and 3) also gets
`{workdir}/evaluate_{split}.jsonl` (or `--jsonl PATH`): one line per utterance with its source,
id, language, reference, hypothesis (greedy; `hypothesis_beam` too) and their word and
character edit counts, so any grouping can be scored again from it. A language added by a
package of yours runs as `python -m data_builders.<name> evaluate ...`, so that it is
registered. One process (the utterances are this host's).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import app, flags

from experiments.saved_run import define_run_flags, quiet_logs, run_config


def define_flags() -> None:
    """The command's flags, defined only when the module runs as the command (so that its
    functions can be imported next to another command's)."""
    define_run_flags("configs/FILE.py:ARGS", "The run's directory (checkpoints, metrics).")
    flags.DEFINE_string("split", "test", "Split to score.")
    flags.DEFINE_bool("greedy", False, "Greedy decoding only (no beam search).")
    flags.DEFINE_string("jsonl", None, "Per-utterance output file (default: "
                        "{workdir}/evaluate_{split}.jsonl).")


def per_source(config: ml_collections.ConfigDict) -> dict[str, ml_collections.ConfigDict]:
    """One config per data source (BUILDER/CONFIG, e.g. lipjax_nl/nl_video), so each language
    is scored alone."""
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


def utterances(config: ml_collections.ConfigDict, model: Any, split: str = "test",
               beam: bool = True) -> list[dict[str, Any]] | None:
    """Every utterance of `split`, source by source: {"source", "id", "language",
    "reference", "hypothesis", "word_edits", "words", "char_edits", "chars"} (and the same
    with `_beam` for the beam search). None when the run writes no text (stage 1)."""
    import jax

    from lipjax import languages, metrics
    from lipjax.data.pipeline import make_loader
    from lipjax.tasks import get_task, text
    from lipjax.tasks.common import valid_rows
    from lipjax.train import mesh as mesh_lib
    from lipjax.train.evaluation import eval_outputs
    from lipjax.train.step import make_eval_step

    task = get_task(config.task)
    settings = task.settings(config)
    steps = {"": make_eval_step(task, settings)}
    if beam and hasattr(task, "beam_step"):
        steps["_beam"] = make_eval_step(task, settings, beam=True)
    mesh = mesh_lib.make_mesh(config.train.get("mesh", None))
    codes = languages.codes()
    records: list[dict[str, Any]] = []
    for name, one in per_source(config).items():
        rows: list[dict[str, Any]] = []
        for suffix, step in steps.items():
            loader = make_loader(one.data, split, train=False, seed=config.seed, mesh=mesh)
            with jax.set_mesh(mesh):
                outputs, batches = eval_outputs(model, step, one, mesh, loader)
            if outputs and "tokens" not in outputs[0]:
                return None
            refs, hyps = text.texts(outputs, batches, one)
            if not rows:
                rows = [{"source": name, "id": _text(batch["id"][i]),
                         "language": codes[int(batch["language"][i])]}
                        for batch in batches for i in range(len(batch["language"]))
                        if valid_rows(batch)[i]]
                for row, ref in zip(rows, refs, strict=True):
                    row["reference"] = ref
            for row, hyp in zip(rows, hyps, strict=True):
                words = metrics.wer_counts([row["reference"]], [hyp])
                chars = metrics.cer_counts([row["reference"]], [hyp])
                row.update({f"hypothesis{suffix}": hyp,
                            f"word_edits{suffix}": words.numerator, "words": words.denominator,
                            f"char_edits{suffix}": chars.numerator, "chars": chars.denominator})
        records += rows
    return records


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def grouped_scores(records: Sequence[dict[str, Any]], key: str) -> dict[str, dict[str, float]]:
    """{group: {"wer", "cer", ("wer_beam", "cer_beam"), "utterances"}} of the records grouped
    by `key` ("source" or "language"): corpus rates, edits summed before dividing."""
    from lipjax.metrics import Counts

    out: dict[str, dict[str, float]] = {}
    for group in sorted({r[key] for r in records}):
        rows = [r for r in records if r[key] == group]
        scores: dict[str, float] = {"utterances": len(rows)}
        for suffix in ("", "_beam"):
            if f"word_edits{suffix}" not in rows[0]:
                continue
            for metric, edits, total in (("wer", "word_edits", "words"),
                                         ("cer", "char_edits", "chars")):
                scores[metric + suffix] = Counts(sum(r[edits + suffix] for r in rows),
                                                 sum(r[total] for r in rows)).rate
        out[group] = scores
    return out


def write_jsonl(records: Sequence[dict[str, Any]], path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


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
    if "utterances" in scores:
        line += f"  {int(scores['utterances'])} utterances"
    return line + (f"  (step {scores['step']})" if "step" in scores else "")


def report_utterances(config: ml_collections.ConfigDict, workdir: str, split: str, beam: bool,
                      jsonl: str | None) -> list[str] | None:
    """The table's lines (per source, then per language) from the utterances of the run's
    best checkpoint, written to `jsonl`; None when the run writes no text."""
    from experiments.recipe import best_model

    model, step = best_model(config, workdir)
    records = utterances(config, model, split, beam)
    if records is None:
        return None
    path = jsonl or os.path.join(workdir, f"evaluate_{split}.jsonl")
    write_jsonl(records, path)
    print(f"{len(records)} utterances (reference, hypotheses) in {path}", file=sys.stderr)
    lines = [format_scores(name, split, {**scores, "step": step})
             for name, scores in grouped_scores(records, "source").items()]
    lines += [format_scores(f"{lang} (all sources)", split, {**scores, "step": step})
              for lang, scores in grouped_scores(records, "language").items()]
    return lines


def main(argv: list[str]) -> None:
    del argv
    f = flags.FLAGS
    quiet_logs()
    if not f.workdir:
        sys.exit("experiments.evaluate: --workdir is required (the run's folder)")
    config = run_config(f.config, f.workdir)
    lines = report_utterances(config, f.workdir, f.split, not f.greedy, f.jsonl)
    if lines is None:  # a stage-1 run: its task's own metrics
        lines = [format_scores(name, f.split, scores) for name, scores in
                 evaluate_run(config, f.workdir, f.split, beam=not f.greedy).items()]
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
