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
