"""The `lipjax` command: configs by name or path, each command's --help, errors that name the
option and the fix. Commands run as a user runs them, in their own process."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from lipjax import cli

REPO = pathlib.Path(__file__).resolve().parents[1]


def _lipjax(*args: str, cwd: pathlib.Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "lipjax.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_stage_configs_are_found_by_name():
    assert {"finetune", "lmdecoder", "units_pretrain"} <= set(cli.config_names())
    assert "common" not in cli.config_names()
    path = cli.resolve_config("finetune:small,lang=it")
    assert path == str(REPO / "configs" / "finetune.py") + ":small,lang=it"
    assert cli.resolve_config("units_pretrain") == str(REPO / "configs" / "units_pretrain.py")
    assert cli.resolve_config("configs/finetune.py:tiny") == "configs/finetune.py:tiny"


def test_bad_configs_name_the_option_and_the_choices():
    with pytest.raises(cli.UsageError, match=r"--config nope:small: no stage config named "
                                             r"'nope'; expected one of .*finetune"):
        cli.resolve_config("nope:small")
    with pytest.raises(cli.UsageError, match="missing/x.py does not exist"):
        cli.resolve_config("missing/x.py:tiny")


def test_arguments_are_rewritten_for_the_program():
    args = cli.rewrite_args("train", ["finetune:tiny,lang=en", "--workdir", "w",
                                      "--config.train.num_steps=3"])
    assert args == [f"--config={REPO / 'configs' / 'finetune.py'}:tiny,lang=en", "--workdir",
                    "w", "--config.train.num_steps=3"]
    args = cli.rewrite_args("evaluate", ["--workdir=w", "--config", "lmdecoder:tiny"])
    assert args == ["--workdir=w", f"--config={REPO / 'configs' / 'lmdecoder.py'}:tiny"]
    assert cli.rewrite_args("build", ["synthetic_lips", "--config", "en_video"]) == [
        "synthetic_lips", "--config", "en_video"]  # a builder config, not a stage config
    with pytest.raises(cli.UsageError, match="lipjax train: give a config first"):
        cli.rewrite_args("train", ["--workdir=w"])
    with pytest.raises(cli.UsageError, match="--config needs a value"):
        cli.rewrite_args("evaluate", ["--config"])


def test_help_lists_commands_and_configs():
    proc = _lipjax("--help")
    assert proc.returncode == 0
    for word in ("build", "train", "evaluate", "transcribe", "convert", "finetune"):
        assert word in proc.stdout
    proc = _lipjax("frobnicate")
    assert proc.returncode == 2 and "no command 'frobnicate'" in proc.stderr


@pytest.mark.parametrize(("command", "option"), [("train", "--workdir"),
                                                 ("evaluate", "--split"),
                                                 ("transcribe", "--videos"),
                                                 ("build", "--manual_dir"),
                                                 ("build synthetic_lips", "--langs"),
                                                 ("convert", "--with_ctc")])
def test_each_command_help_lists_its_options(command, option, tmp_path):
    proc = _lipjax(*command.split(), "--help", cwd=tmp_path)  # outside the repository
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert option in proc.stdout + proc.stderr


def test_a_missing_config_is_a_usage_error(tmp_path):
    proc = _lipjax("train", "--workdir", str(tmp_path))
    assert proc.returncode == 2
    assert "lipjax train: give a config first" in proc.stderr and "finetune" in proc.stderr
