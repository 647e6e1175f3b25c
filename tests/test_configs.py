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
