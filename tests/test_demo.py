"""The whole recipe end to end at tiny size, as `make demo` runs it: corpus → stage 1 → stage 2
→ stage 3 with the demo's methods and the joint model of it and pt (two runs at a time, each in its
own process) → test scores,
results.md / results.json and the plots; every run must have learnt."""

import json
import math
import statistics

import pytest

from experiments import demo, stage3_candidates
from experiments.recipe import (
    HIGH_RESOURCE,
    JOINT,
    LOW_RESOURCE,
    MEMORY_METHODS,
    PRETRAINED_METHODS,
    run_name,
)
from lipjax.train.tb import read_metrics

# The demo's per-language methods: baseline (a); the proposed model (posterior read) is the
# joint reader of it and pt, which the recipe always trains. The other methods are config
# switches of the same task (tests/test_tasks.py builds and loads each; `make reproduce`
# trains each per language), and a run of each here would cost minutes of CI.
TESTED = demo.PRESETS["demo"]["methods"]
JOINT_METHODS = ("posterior",)  # recipe.Recipe.joint
READING = tuple(m for m in MEMORY_METHODS if m in TESTED + JOINT_METHODS)
# Steps per stage (tiny logs every step): enough for every run's loss to fall (below); the
# fine-tuning of pretrained models, which falls slowest, gets the most.
STEPS = {"units_pretrain": 30, "lmdecoder": 30, "finetune": 50}
WINDOW = 5  # logged steps at each end whose median loss is compared

# Learning: per run, the median loss of its last WINDOW logged steps below a factor f of the
# median of its first WINDOW (medians: one batch of unlucky clips cannot decide either end).
# The losses: stage 1's unit loss (frame CE over the K = 190 phones of the inventory) and the
# text runs' decoder CE (over the V pieces of the language's tokenizer, label-smoothed).
# Untrained weights start at or above chance, log K: a CE is logsumexp(z) - z_target ≥
# log K + mean(z) - z_target, and weights that know nothing favour the target's logit z_target
# no more than any other (each term of the smoothed CE is such a CE). A run whose loss reached
# f·log K, the loss of a uniform guess among K^f classes, thus passes:
# - stage 1, f = 0.85: a guess among 190^0.85 ≈ 87 phones, under half of an inventory made
#   for many languages, of which the corpus's five use a part;
# - stage 2, f = 0.75: a guess among V^0.75 pieces (under half of V for V > 16), reading
#   the sentence's phones (or their visemes): the easiest of the three tasks;
# - stage 3 from scratch, f = 0.85: video to text on one language's few clips;
# - stage 3 from stages 1 and 2 (PRETRAINED_METHODS) starts from a trained decoder, with the
#   visual side frozen and a lower learning rate (recipe.FINETUNE_LR): it must still lower
#   its loss, f = 0.95.
FALLS = {"units_pretrain": ("unit_loss", 0.85), "lmdecoder": ("ce", 0.75),
         "scratch": ("ce", 0.85), "pretrained": ("ce", 0.95)}


def _learnt(runs_dir, stage: str, lang: str | None = None, method: str | None = None) -> None:
    """The run's loss fell by its factor of FALLS (see above)."""
    kind = stage if stage != "finetune" else (
        "pretrained" if method in PRETRAINED_METHODS else "scratch")
    key, factor = FALLS[kind]
    run = run_name(stage, lang, method)
    values = [float(r[key]) for r in read_metrics(str(runs_dir / run), "train")]
    assert len(values) == STEPS[stage] and all(map(math.isfinite, values)), (run, values)
    first = statistics.median(values[:WINDOW])
    last = statistics.median(values[-WINDOW:])
    assert last < factor * first, (run, key, first, last, values)


@pytest.mark.slow  # minutes on 2 cores: `make test-slow`, which .ci/run also runs
def test_tiny_demo_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    results = demo.main(["--data_dir", str(tmp_path / "data"), "--workdir", str(workdir),
                         "--variant", "tiny", "--corpus_size", "6", "--workers", "2",
                         "--beam_size", "2", "--methods", ",".join(TESTED),
                         "--steps", ",".join(f"{s}={n}" for s, n in STEPS.items())])
    assert set(results["units_pretrain"]) == set(HIGH_RESOURCE + LOW_RESOURCE) | {"all"}
    # Error rates are finite and ≥ 0 (insertions can take them past 1); accuracies in [0, 1].
    rate = lambda x: math.isfinite(x) and x >= 0.0
    for code, stage1 in results["units_pretrain"].items():
        assert {"per", "ver", "lid_accuracy"} <= set(stage1), code
        assert rate(stage1["per"]) and rate(stage1["ver"]), (code, stage1)
        assert 0.0 <= stage1["lid_accuracy"] <= 1.0, (code, stage1)
    assert results["run"]["command"].startswith("python -m experiments.demo")
    assert results["steps"] == STEPS  # the steps that ran
    assert results["downsample"] == demo.PRESETS["demo"]["downsample"]
    for lang in LOW_RESOURCE:  # before fine-tuning, per-language models only: at step 0
        assert set(results["zero_shot"][lang]) == set(MEMORY_METHODS) & set(TESTED)
        assert all(r["step"] == 0 and rate(r["wer"]) for r in results["zero_shot"][lang].values())
    for method in READING:
        read = results["memory_read"][method]
        assert read["slots"] > 1 and 0.0 <= read["true_slot_top1"] <= 1.0
    runs = workdir / "runs"
    _learnt(runs, "units_pretrain")
    for lang in LOW_RESOURCE:
        assert results["low_resource_clips"][lang] == 6
        assert all(rate(results["lmdecoder"][lang][k]) for k in ("wer", "cer", "wer_ctc"))
        _learnt(runs, "lmdecoder", lang)
        for method in TESTED:
            scores = results["finetune"][lang][method]
            assert {"wer", "cer", "wer_ctc", "wer_beam", "cer_beam", "step"} <= set(scores)
            assert all(rate(scores[k]) for k in ("wer", "cer", "wer_ctc", "wer_beam",
                                                 "cer_beam")), (lang, method, scores)
            # Pretrained inits compete with their loaded weights (step 0, train.eval_at_start).
            assert scores["step"] > 0 or method in PRETRAINED_METHODS
            _learnt(runs, "finetune", lang, method)

    # One model of it and pt: the language-ID head picks the decoder; scored per language.
    joint = results["joint"]["posterior"]
    for lang in LOW_RESOURCE:
        scores = joint[lang]
        for key in ("wer", "wer_routed", "wer_beam", "wer_routed_beam", "wer_soft_beam"):
            assert rate(scores[key]), (lang, key, scores)
        assert 0.0 <= scores["lid_accuracy"] <= 1.0
    # Confusion counts: every test clip of each language once (rows: labelled language).
    assert [sum(row) for row in joint["confusion"]] == [6] * len(LOW_RESOURCE)
    for i, lang in enumerate(LOW_RESOURCE):
        assert joint["confusion"][i][i] / 6 == pytest.approx(joint[lang]["lid_accuracy"])
    _learnt(runs, "finetune", JOINT, "posterior")

    saved = json.loads((workdir / "results.json").read_text())
    assert saved["finetune"].keys() == results["finetune"].keys()
    table = (workdir / "results.md").read_text()
    for lang in LOW_RESOURCE:
        # A row per method, one per memory method before fine-tuning, the joint model's, and
        # the joint model's against scratch.
        before = len(set(MEMORY_METHODS) & set(TESTED))
        rows = len(TESTED) + before + len(JOINT_METHODS) + 1
        assert sum(line.startswith(f"| {lang} (") for line in table.splitlines()) == rows
    for plot in ("learning_curves.png", "memory_attention_posterior.png", "corpus_preview.png",
                 "lid_confusion_posterior.png"):
        assert (workdir / plot).stat().st_size > 10_000, plot
    # One unseen test clip read by the joint model (the head names its language), rendered.
    clip = results["test_clip"]
    assert clip["read_as"] in LOW_RESOURCE and clip["language"] in LOW_RESOURCE
    assert 0.0 <= clip["language_probability"] <= 1.0
    for video in ("test_clip.mp4", "test_clip_mouth.mp4"):
        assert (workdir / video).stat().st_size > 1_000, video
    for run in ("units_pretrain", "lmdecoder_it", "finetune_pt_scratch"):
        assert (workdir / "runs" / "logs" / f"{run}.log").exists()
    # A stage-3 candidate from the demo's runs (experiments/stage3_candidates.py), scored on
    # validation at step 0 and after its steps, with stage 2's audio-text batches rehearsed
    # beside the video ones (lipjax/data/rehearsal.py: both streams in its checkpoint).
    records = stage3_candidates.main(
            ["--workdir", str(workdir), "--data_dir", str(tmp_path / "data"), "--variant",
             "tiny", "--name", "check", "--steps", "2", "--eval_every", "2",
             "--rehearsal", "1.0", "--plot", str(tmp_path / "candidates.png")])
    assert [r["step"] for r in records] == [0, 2]
    assert all(rate(r["wer_routed"]) and 0.0 <= r["lid_accuracy"] <= 1.0 for r in records)
    candidate = workdir / "candidates" / "check"
    trained = read_metrics(str(candidate), "train")
    assert trained and all(math.isfinite(r["rehearsal_loss"]) for r in trained)
    assert (tmp_path / "candidates.png").stat().st_size > 0
    saved = sorted((candidate / "checkpoints").glob("*/data/shard_*.json"))
    assert saved and all("rehearsal" in json.loads(p.read_text()) for p in saved)
