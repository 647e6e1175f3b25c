"""The whole recipe end to end at tiny size, as `make demo` runs it: corpus → stage 1 → stage 2
→ stage 3 with every method (two runs at a time, each in its own process) → test scores,
results.md / results.json and the plots."""

import json

import pytest

from experiments import demo
from experiments.recipe import HIGH_RESOURCE, LOW_RESOURCE, MEMORY_METHODS, PRETRAINED_METHODS

# Both memory addressings, ablation (c) and baseline (a); baseline (b) is (c) without the
# LMDecoder checkpoint, one config switch away (tests/test_tasks.py builds every variant).
TESTED = ("memory", "posterior", "noread", "scratch")


@pytest.mark.slow  # ~15 min on 2 cores: `make test-slow`, which .ci/run also runs
def test_tiny_demo_end_to_end(tmp_path):
    workdir = tmp_path / "demo"
    results = demo.main(["--data_dir", str(tmp_path / "data"), "--workdir", str(workdir),
                         "--variant", "tiny", "--corpus_size", "6", "--workers", "2",
                         "--beam_size", "2", "--methods", ",".join(TESTED)])
    assert set(results["units_pretrain"]) == set(HIGH_RESOURCE + LOW_RESOURCE) | {"all"}
    stage1 = results["units_pretrain"]["all"]
    assert {"per", "ver", "lid_accuracy"} <= set(stage1)
    assert results["run"]["command"].startswith("python -m experiments.demo")
    # the steps that ran, the configs' defaults included (tiny: 4 per stage)
    assert results["steps"] == {"units_pretrain": 4, "lmdecoder": 4, "finetune": 4}
    assert results["downsample"] == demo.PRESETS["demo"]["downsample"]
    for method in MEMORY_METHODS:
        for lang in LOW_RESOURCE:  # before fine-tuning: scored at step 0
            assert results["zero_shot"][lang][method]["step"] == 0
            assert results["zero_shot"][lang][method]["wer"] >= 0.0
        read = results["memory_read"][method]
        assert read["slots"] > 1 and 0.0 <= read["true_slot_top1"] <= 1.0
    for lang in LOW_RESOURCE:
        assert results["low_resource_clips"][lang] == 6
        assert results["lmdecoder"][lang]["cer"] >= 0.0
        for method in TESTED:
            scores = results["finetune"][lang][method]
            assert {"wer", "cer", "wer_ctc", "wer_beam", "cer_beam", "step"} <= set(scores)
            # Pretrained inits compete with their loaded weights (step 0, train.eval_at_start).
            assert scores["step"] > 0 or method in PRETRAINED_METHODS

    saved = json.loads((workdir / "results.json").read_text())
    assert saved["finetune"].keys() == results["finetune"].keys()
    table = (workdir / "results.md").read_text()
    for lang in LOW_RESOURCE:
        # A row per method, and one per memory method before fine-tuning.
        rows = len(TESTED) + len(MEMORY_METHODS)
        assert sum(line.startswith(f"| {lang} (") for line in table.splitlines()) == rows
    for plot in ("learning_curves.png", "memory_attention_memory.png",
                 "memory_attention_posterior.png", "corpus_preview.png"):
        assert (workdir / plot).stat().st_size > 10_000, plot
    for run in ("units_pretrain", "lmdecoder_it", "finetune_pt_scratch"):
        assert (workdir / "runs" / "logs" / f"{run}.log").exists()
