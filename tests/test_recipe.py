"""The recipe's model selection: the best validation step among the checkpoints still kept."""

import json

from experiments.recipe import best_step


def _workdir(tmp_path, kept, evals):
    for step in kept:
        (tmp_path / "checkpoints" / str(step)).mkdir(parents=True)
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for step, wer in evals:
            f.write(json.dumps({"split": "eval", "step": step, "wer": wer}) + "\n")
            f.write(json.dumps({"split": "train", "step": step, "loss": 1.0}) + "\n")
    return str(tmp_path)


def test_best_kept_step_by_validation_metric(tmp_path):
    workdir = _workdir(tmp_path, kept=[50, 75, 100],
                       evals=[(25, 0.1), (50, 0.6), (75, 0.4), (100, 0.5)])
    assert best_step(workdir, "wer") == 75  # 25 scored better but its checkpoint is gone
    assert best_step(workdir, "wer", mode="max") == 50


def test_ties_prefer_the_later_step_and_no_evals_mean_latest(tmp_path):
    workdir = _workdir(tmp_path, kept=[10, 20], evals=[(10, 1.0), (20, 1.0)])
    assert best_step(workdir, "wer") == 20
    assert best_step(workdir, "cer") == 20  # metric never evaluated: the latest checkpoint
    assert best_step(str(tmp_path / "missing"), "wer") is None


def test_without_frame_labels_every_stage_learns_from_transcripts():
    """The `*_ctc` presets: stage 1 by CTC on the phone sequence, stage 3's posterior read in
    its CTC form; with frame labels the recipe is as it was."""
    from experiments import demo
    from experiments.recipe import Recipe

    assert demo.PRESETS["reproduce_ctc"]["frame_labels"] is False
    assert demo.PRESETS["demo_ctc"]["frame_labels"] is False
    for frame_labels, targets, units in ((True, "frames", "visemes"),
                                         (False, "sequence", "visemes_ctc")):
        recipe = Recipe(data_dir="d", workdir="w", frame_labels=frame_labels)
        assert recipe.stage1_config().model.phoneme_targets == targets
        assert recipe.stage2_config("it").loss.viseme_mix == 0.5  # reads no video either way
        for method in ("posterior", "memory"):
            config = recipe.stage3_config("it", method)
            assert config.model.phoneme_targets == targets
            assert config.model.memory_units == units
    acoustic = Recipe(data_dir="d", workdir="w", units="acoustic")
    assert acoustic.stage3_config("it", "posterior").model.memory_units == "units"
