"""The paper-size recipe (configs/paper_lrs3_mtedx.py) and the time mask per second of clip.

Fast: every value of every run is written in the one file (none left to a stage config, the
loader's or the model factory's defaults), the mixtures name configs the builders declare in
the run's languages, the effective batches and schedules count updates, and the time mask
gives a clip of each length its hand-counted number of spans. Slow: the dry run
(experiments/dry_run.py) end to end on the builders' dummy data, the base model compiled.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import ml_collections
import numpy as np
import pytest

from configs import paper_lrs3_mtedx as paper
from lipjax.data import transforms

RUNS = paper.runs()


def _arg(stage: str, lang: str) -> str:
    return f"stage={stage}" + (f",lang={lang}" if lang else "")


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> value of a nested dict / ConfigDict (a ConfigDict leaf such as
    train.mesh as a plain dict)."""
    if isinstance(tree, ml_collections.ConfigDict):
        tree = tree.to_dict()
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "mesh":
            out.update(_flat(value, name + "."))
        else:
            out[name] = value
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b


@pytest.mark.parametrize("stage,lang", RUNS)
def test_every_value_of_the_run_is_written_in_the_file(stage, lang):
    """The config holds exactly the file's values: nothing of the stage config, the loader's
    DEFAULTS or the model factory's sizes is left unwritten (only the links of LINKED)."""
    from lipjax.data import pipeline
    from lipjax.models import factory

    written = _flat(paper.values(stage, lang))
    config = _flat(paper.get_config(_arg(stage, lang)))
    for key, value in written.items():
        assert _same(config[key], value), (key, config[key], value)
    own = _flat(paper.stage_config(stage, lang, "out/data"))
    assert sorted(set(own) - set(written) - set(paper.LINKED)) == []
    assert sorted(set(config) - set(written) - set(paper.LINKED)) == []
    data = {k.split(".", 1)[1] for k in written if k.startswith("data.")}
    assert sorted(set(pipeline.DEFAULTS) - {"units", "unit_vocab"} - data) == []
    assert "time_mask_per_second" in data  # read by the clip transform (lipjax/data/transforms)
    model = {k.split(".", 1)[1] for k in written if k.startswith("model.")}
    assert sorted((set(factory.DEFAULTS) | set(factory.SIZES["base"])) - model) == []
    assert {"accumulate_steps", "eps", "warmup_steps"} <= {
            k.split(".", 1)[1] for k in written if k.startswith("optim.")}


def test_the_trainer_loads_the_file_by_path():
    """`--config configs/paper_lrs3_mtedx.py:stage=...` as lipjax.train reads it."""
    from absl import flags
    from ml_collections import config_flags

    argv = ["prog", "--config=configs/paper_lrs3_mtedx.py:stage=lmdecoder,lang=pt,"
            "data_dir=/data/lipjax", "--config.train.num_steps=10"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
    values(argv)
    config = values.config
    assert (config.task, config.lang, config.data.data_dir) == ("lmdecoder", "pt", "/data/lipjax")
    assert config.data.sources == ("mls/pt", "common_voice/pt", "mtedx/pt_audio")
    assert config.train.num_steps == 10
    for bad, match in (("stage=lmdecoder", "needs lang"), ("stage=units_pretrain,lang=it",
                                                            "takes no lang"),
                       ("stage=decode", "stage must be one of"), ("small", "base size only")):
        with pytest.raises(ValueError, match=match):
            paper.get_config(bad)


def test_mixtures_name_configs_the_builders_declare_in_the_runs_languages():
    """Every data.sources entry is BUILDER/CONFIG[/SPLIT] of a shipped builder, its config
    holds the run's language, and `paper.CORPORA` builds it; the tokenizers read the LMDecoder's
    text. VoxPopuli has no Portuguese, so the pt LMDecoder reads three corpora."""
    from data_builders import registry
    from lipjax.data import pipeline
    from lipjax.data import tokenizer as tokenizer_command

    named = set()
    for stage, lang in RUNS:
        config = paper.get_config(_arg(stage, lang))
        allowed = set(config.data.languages)
        assert allowed == set(paper.HIGH_RESOURCE if stage == "units_pretrain"
                              else lang.split("+"))
        for source in pipeline.mixture(config.data):
            declared = registry.builder_cls(source.builder).builder_configs
            assert source.config in declared, source.spec
            assert declared[source.config].language in allowed, source.spec
            assert source.config in paper.CORPORA[source.builder], source.spec
            named.add((source.builder, source.config))
    assert named == {(b, c) for b, configs in paper.CORPORA.items() for c in configs}
    assert "pt" not in registry.builder_cls("voxpopuli").builder_configs
    for lang in paper.LOW_RESOURCE:
        sources = tokenizer_command.parse_sources(paper.tokenizer_sources(lang))
        assert [f"{s.builder}/{s.config}" for s in sources] == list(
                paper.AUDIO_TEXT_SOURCES[lang])
        assert paper.tokenizer_command(lang, "D")[-2:] == ["--vocab", "1000"]
    commands = paper.build_commands({name: f"M/{name}" for name in paper.CORPORA}, "D")
    assert commands[0] == ["python", "-m", "data_builders", "lrs3", "--manual_dir", "M/lrs3",
                           "--data_dir", "D", "--config", "en"]


def test_the_joint_reader_is_the_per_language_runs_together():
    """Stage 3 of it+pt reads both languages' clips, loads both LMDecoders and stage 1's
    language-ID head, and keeps the reader a user gets (routed WER) as its best step; the
    per-language runs train no language-ID head."""
    joint = paper.get_config(f"stage=finetune,lang={paper.JOINT},runs_dir=R")
    assert list(joint.data.sources) == [s for lang in paper.LOW_RESOURCE
                                        for s in paper.VIDEO_TEXT_SOURCES[lang]]
    assert dict(joint.init.lmdecoder) == {lang: f"R/lmdecoder_{lang}"
                                          for lang in paper.LOW_RESOURCE}
    assert joint.init.lid == joint.init.encoder == "R/units_pretrain"
    assert joint.loss.lid_weight > 0 and joint.train.best_metric == "wer_routed"
    for lang in paper.LOW_RESOURCE:
        one = paper.get_config(f"stage=finetune,lang={lang},runs_dir=R")
        assert one.init.lmdecoder == f"R/lmdecoder_{lang}" and one.init.lid == ""
        assert one.loss.lid_weight == 0.0 and one.train.best_metric == "wer"
    with pytest.raises(ValueError, match="needs lang= one of"):
        paper.get_config("stage=lmdecoder,lang=it+pt")


def test_effective_batches_and_the_schedules_count_updates():
    """batch × accumulate clips per update; num_steps = updates × accumulate; each warm-up
    (auto_avsr's 1/15 cosine, the paper's 10 % tri-stage) reaches the peak rate at its update."""
    from lipjax.train import schedules

    expected = {"units_pretrain": (256, 60_000, 4_000), "lmdecoder": (256, 60_000, 6_000),
                "finetune": (128, 20_000, 2_000)}
    for stage, lang in RUNS:
        config = paper.get_config(_arg(stage, lang))
        clips, updates, warmup = expected[stage]
        k = schedules.accumulate_steps(config.optim)
        assert config.data.batch_size * k == clips
        assert config.train.num_steps == updates * k
        assert config.optim.warmup_steps == warmup
        lr = schedules.update_schedule(config.optim, config.train.num_steps)
        peak = config.optim.lr
        assert float(lr(0)) < 0.02 * peak  # warming up from (almost) zero
        assert float(lr(warmup * k)) == pytest.approx(peak, rel=1e-3)
        assert float(lr(warmup * k - 1)) == float(lr((warmup - 1) * k))  # constant in an update


@pytest.mark.parametrize("frames,per_second,spans", [
        (0, 1.0, 0), (1, 1.0, 1), (25, 1.0, 1), (26, 1.0, 2), (50, 1.0, 2), (51, 1.0, 3),
        (75, 1.0, 3), (250, 1.0, 10), (375, 1.0, 15),  # one per started second at 25 fps
        (12, 2.0, 1), (13, 2.0, 2), (375, 0.5, 8),  # 0.96 s and 1.04 s at two a second
        (375, 0.0, 2)])  # per_second 0: the fixed count
def test_time_mask_count_per_second_of_clip(frames, per_second, spans):
    assert transforms.time_mask_count(frames, 0 if per_second else 2, per_second) == spans


def _clip(frames: int) -> dict[str, Any]:
    return {"video": np.full((frames, 96, 96), 200, np.uint8), "units": np.zeros(0, np.int32),
            "audio": np.zeros(0, np.int16), "phoneme_ids": np.zeros(0, np.int32),
            "language": "en", "text": "a", "id": "clip"}


@pytest.mark.parametrize("frames,spans", [(20, 1), (26, 2), (75, 3), (250, 10)])
def test_a_clip_gets_its_number_of_spans(frames, spans, monkeypatch):
    """The transform draws that many spans, each at most time_mask_frames long and inside
    the clip, and masks exactly the frames they cover."""
    drawn = []

    def recording(length, count, max_span, rng):
        for start, span in real(length, count, max_span, rng):
            drawn.append((start, span))
            yield start, span
        drawn.append(("count", count))

    real = transforms.time_mask_spans
    monkeypatch.setattr(transforms, "time_mask_spans", recording)
    transform = transforms.ClipTransform(data_dir="", with_video=True, train=True, crop=88,
                                         hflip=False, time_mask_frames=10,
                                         time_mask_per_second=1.0, tokenize=False)
    covered = np.zeros(frames, bool)
    for index in range(5):
        drawn.clear()
        mask = transform(index, _clip(frames))["time_mask"]
        assert drawn[-1] == ("count", spans)
        for start, span in drawn[:-1]:
            assert 1 <= span <= 10 and 0 <= start and start + span <= frames
            covered[start:start + span] = True
        assert (mask == covered).all()
        covered[:] = False


def test_without_time_mask_per_second_the_masks_are_unchanged():
    """The fixed count draws exactly what it drew before the per-second count existed."""
    transform = transforms.ClipTransform(data_dir="", with_video=True, train=True, crop=88,
                                         time_masks=2, time_mask_frames=10, tokenize=False)
    for index in range(20):
        rng = np.random.default_rng([0, 0, index])
        rng.integers(0, 9), rng.integers(0, 9), rng.random()  # crop offsets and flip
        expected = np.zeros(40, bool)
        for _ in range(2):  # the loop as it was written before
            span = int(rng.integers(0, 11))
            if span and 40 > span:
                start = int(rng.integers(0, 40 - span + 1))
                expected[start:start + span] = True
        assert (transform(index, _clip(40))["time_mask"] == expected).all()


def test_spans_per_clip_and_per_second_are_not_both_given():
    with pytest.raises(ValueError, match="data.time_masks=2 and data.time_mask_per_second=1.0"):
        transforms.ClipTransform(data_dir="", with_video=True, train=True, time_masks=2,
                                 time_mask_per_second=1.0)
    with pytest.raises(ValueError, match="time_mask_per_second=-1.0"):
        transforms.ClipTransform(data_dir="", with_video=True, train=True,
                                 time_mask_per_second=-1.0)
    assert math.isclose(transforms.ClipTransform(data_dir="", with_video=True,
                                                 train=True).time_mask_per_second, 0.0)


@pytest.mark.slow
def test_dry_run_builds_every_mixture_and_compiles_every_stage(tmp_path):
    """`python -m experiments.dry_run`: every corpus and tokenizer built from the dummy data,
    every run's mixture read from each of its sources, a base train step of each stage
    compiled with its memory plan, and the estimates made."""
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "-m", "experiments.dry_run",
                             "--workdir", str(tmp_path / "work"), "--json", str(out)],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {paper.run_name(stage, lang) for stage, lang in RUNS}
    for name, run in report["runs"].items():
        assert run["counts"] and all(c["read"] > 0 for c in run["counts"].values()), name
    for stage, row in report["stages"].items():
        assert row["runs"] == sum(s == stage for s, _ in RUNS)
        assert row["TFLOP_per_step"] > 0 and row["planned_GiB"] > 0
        assert all(hours > 0 for hours in row["hours"].values())
    assert report["stages"]["units_pretrain"]["params"] > 1e8  # the base model, compiled
    assert "| all runs |" in result.stdout
    assert report["runs"]["units_pretrain"]["time_masks"]["time_mask_per_second"] == 1.0
