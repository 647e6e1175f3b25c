"""Config arguments: values take the type of their default; a bad boolean is an error."""

import pytest

from configs import common

DEFAULTS = {"flag": False, "steps": 10, "lr": 0.5, "lang": "en"}


@pytest.mark.parametrize("text", ["1", "true", "True", "YES", "y"])
def test_true_spellings(text):
    assert common.parse_arg(f"tiny,flag={text}", DEFAULTS).flag is True


@pytest.mark.parametrize("text", ["0", "false", "FALSE", "No", "n"])
def test_false_spellings(text):
    args = common.parse_arg(f"tiny,flag={text}", {**DEFAULTS, "flag": True})
    assert args.flag is False


@pytest.mark.parametrize("text", ["ture", "on", "2", ""])
def test_other_boolean_is_an_error_naming_key_and_value(text):
    with pytest.raises(ValueError, match=rf"flag='{text}'.*expected a boolean"):
        common.parse_arg(f"tiny,flag={text}", DEFAULTS)


def test_values_take_the_type_of_their_default():
    args = common.parse_arg("base,steps=3,lr=1e-3,lang=it", DEFAULTS)
    assert (args.variant, args.steps, args.lr, args.lang) == ("base", 3, 1e-3, "it")
    assert isinstance(args.steps, int) and isinstance(args.lr, float)
    with pytest.raises(ValueError, match=r"steps='3x'.*expected int"):
        common.parse_arg("tiny,steps=3x", DEFAULTS)


def test_downsample_sets_resolution_in_every_stage():
    """`downsample=d` averages d x d pixel blocks and crops 88/d in all three stages alike
    (stage 3 loads stage 1's front end, so they must read the same mouths); 0 keeps the
    variant's; a d that does not divide the 88-pixel crop is an error naming the argument."""
    from configs import finetune, lmdecoder, units_pretrain

    got = [(c.data.downsample, c.data.crop) for c in (
        units_pretrain.get_config("small,downsample=4"),
        finetune.get_config("small,lang=it,init=scratch,downsample=4"),
        lmdecoder.get_config("small,lang=it,downsample=4"))]
    assert got == [(4, 22)] * 3
    assert (units_pretrain.get_config("small").data.crop,
            units_pretrain.get_config("tiny").data.crop) == (44, 88)
    for bad in (3, -2):
        with pytest.raises(ValueError, match=f"downsample={bad}"):
            units_pretrain.get_config(f"small,downsample={bad}")


STAGES = {"units_pretrain": "tiny", "lmdecoder": "tiny,lang=it", "finetune": "tiny,lang=it"}


def _stage(name):
    import importlib

    return importlib.import_module(f"configs.{name}")


def test_every_stage_takes_a_mixture_beside_its_language_shorthand():
    """`sources=` replaces the synthetic corpus's `{builder}/{lang}_{video|audio}` defaults;
    stages 2 and 3 only read clips of their language."""
    defaults = {name: _stage(name).get_config(arg).data for name, arg in STAGES.items()}
    assert defaults["units_pretrain"].sources == tuple(
            f"synthetic_lips/{code}_video" for code in ("en", "es", "fr"))
    assert defaults["lmdecoder"].sources == ("synthetic_lips/it_audio",)
    assert defaults["finetune"].sources == ("synthetic_lips/it_video",)
    assert [d.languages for d in defaults.values()] == [(), ("it",), ("it",)]
    assert all((d.split, d.eval_split, d.long_clips) == ("train", "validation", "drop")
               for d in defaults.values())
    assert "builder" not in defaults["units_pretrain"]
    # Stages 1 and 2 learn unit targets, which the loader checks; stage 3 reads none.
    assert [d.get("units") for d in defaults.values()] == ["phoneme", "phoneme", None]
    mixed = _stage("units_pretrain").get_config("tiny,sources=lrs3/en/pretrain+mtedx/es_video:0.5")
    assert mixed.data.sources == ("lrs3/en/pretrain", "mtedx/es_video:0.5")
    own = _stage("lmdecoder").get_config("tiny,lang=nl,builder=nl_corpus")
    assert own.data.sources == ("nl_corpus/nl_audio",)


def test_docstring_commands_build_their_mixtures():
    """The paper's mixtures in the stage docstrings are commands that make valid configs."""
    import re

    from lipjax.data import pipeline

    expected = {"units_pretrain": {"lrs3/en/pretrain", "lrs3/en/train", "mtedx/es_video",
                                   "mtedx/fr_video"},
                "lmdecoder": {"mls/it", "voxpopuli/it", "common_voice/it", "mtedx/it_audio"},
                "finetune": {"mtedx/it_video"}}
    for name, entries in expected.items():
        doc = _stage(name).__doc__.replace("\\\n", "")
        args = [a for n, a in re.findall(r"--config configs/(\w+)\.py:(\S+)", doc) if n == name]
        mixtures = [_stage(name).get_config(a).data.sources for a in args if "sources=" in a]
        assert len(mixtures) == 1, (name, args)
        assert {spec for spec, _ in pipeline.parse_sources(mixtures[0])} == entries


def test_command_line_overrides_of_the_data_block():
    """`--config.data.sources=A+B`, `--config.data.split=pretrain` work, and the loader's unit
    checks follow `--config.model.unit_type` / `unit_vocab`."""
    from absl import flags
    from ml_collections import config_flags

    argv = ["prog", "--config=configs/units_pretrain.py:tiny",
            "--config.data.sources=lrs3/en/pretrain+mtedx/es_video:0.5",
            "--config.data.split=pretrain", "--config.data.eval_split=test",
            "--config.data.long_clips=crop", "--config.model.unit_type=acoustic",
            "--config.model.unit_vocab=50"]
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
    values(argv)
    data = values.config.data
    assert data.sources == ("lrs3/en/pretrain+mtedx/es_video:0.5",)
    assert (data.split, data.eval_split, data.long_clips) == ("pretrain", "test", "crop")
    assert (data.units, data.unit_vocab) == ("acoustic", 50)
    assert values.config.model.unit_type == "acoustic"


def test_finetune_of_several_languages_is_one_reader():
    from configs import finetune

    one = finetune.get_config("tiny,lang=it,init=posterior,runs_dir=R")
    both = finetune.get_config("tiny,lang=it+pt,init=posterior,runs_dir=R")
    assert both.data.sources == ("synthetic_lips/it_video", "synthetic_lips/pt_video")
    assert both.data.languages == ("it", "pt") and list(both.model.languages) == ["it", "pt"]
    assert both.init.lmdecoder.to_dict() == {"it": "R/lmdecoder_it", "pt": "R/lmdecoder_pt"}
    assert both.init.lid == both.init.encoder == "R/units_pretrain"
    assert both.loss.lid_weight > 0 and both.train.best_metric == "wer_routed"
    # One language is the same reader with one decoder and no language-ID head to train.
    assert one.init.lmdecoder == "R/lmdecoder_it" and not one.init.lid
    assert one.loss.lid_weight == 0 and one.train.best_metric == "wer"
    assert not finetune.get_config("tiny,lang=it+pt,init=scratch").init.lid
    with pytest.raises(ValueError, match="twice"):
        finetune.get_config("tiny,lang=it+it")


def test_finetune_baselines_start_from_a_converted_checkpoint(tmp_path):
    import json

    from configs import finetune

    (tmp_path / "config.json").write_text(json.dumps({"model": {"dim": 96, "heads": 4}}))
    config = finetune.get_config(f"tiny,lang=it,init=scratch,init_from={tmp_path}")
    assert (config.model.dim, config.model.heads) == (96, 4)
    assert config.init.encoder == str(tmp_path) and not config.init.lmdecoder
    with pytest.raises(ValueError, match="init=scratch or init=nomemory"):
        finetune.get_config(f"tiny,lang=it,init=posterior,init_from={tmp_path}")
    with pytest.raises(FileNotFoundError, match="lipjax.io.convert"):
        finetune.get_config(f"tiny,lang=it,init=scratch,init_from={tmp_path / 'none'}")
