"""Each builder README's build command, as written, on the builder's dummy data.

The command is read from the README's `## Build` block (its last command, where a README shows a
second one for small samples such as the dummy data); only `--manual_dir` (the README's example
folder) and `--data_dir` are pointed at dummy_data/ and a temporary folder. One runs as
a real `python -m data_builders` process (the install has no TensorFlow), the others through
`build.main` in this process, which is the same code and much faster.
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from data_builders import build, registry

REPO = pathlib.Path(__file__).resolve().parents[1]
BUILDERS = ("lrs3", "mtedx", "mls", "common_voice", "voxpopuli", "lrw", "voxceleb2", "my_corpus")


def readme_commands(name: str) -> list[list[str]]:
    """The `python -m data_builders` commands of the README's `## Build` section, as argv."""
    text = (REPO / "data_builders" / name / "README.md").read_text()
    section = text.split("\n## Build\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    assert blocks, f"data_builders/{name}/README.md: no bash block under ## Build"
    commands = []
    for line in blocks[0].replace("\\\n", " ").splitlines():
        if line.strip().startswith("python -m data_builders"):
            commands.append(shlex.split(line.split(" #")[0]))
    assert commands, f"data_builders/{name}/README.md: no `python -m data_builders` command"
    return commands


def on_dummy_data(argv: list[str], name: str, data_dir: pathlib.Path) -> list[str]:
    """argv after `python -m data_builders`, reading dummy_data/ and writing into data_dir."""
    assert argv[:4] == ["python", "-m", "data_builders", name], argv
    args = argv[3:]
    for flag, value in (("--manual_dir", REPO / "data_builders" / name / "dummy_data"),
                        ("--data_dir", data_dir)):
        args[args.index(flag) + 1] = str(value)
    return args


@pytest.mark.parametrize("name", BUILDERS)
def test_readme_build_command(name, tmp_path, capsys):
    assert build.main(on_dummy_data(readme_commands(name)[-1], name, tmp_path)) == 0
    out = capsys.readouterr().out
    built = re.findall(r"^(\S+)/(\S+): \{(.*)\} in ", out, flags=re.M)
    assert built, out
    for tfds_name, config, counts in built:
        assert tfds_name == registry.tfds_name(name)
        assert all(int(n) > 0 for n in re.findall(r": (\d+)", counts)), counts
        source = tfds.data_source(f"{tfds_name}/{config}", split="train", data_dir=str(tmp_path))
        assert len(source) > 0 and source[0]["id"]


def test_command_runs_as_a_process_without_tensorflow(tmp_path):
    argv = on_dummy_data(readme_commands("common_voice")[0], "common_voice", tmp_path)
    proc = subprocess.run([sys.executable, "-m", "data_builders", *argv], cwd=REPO, text=True,
                          capture_output=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "lipjax_common_voice/it: {'train': 2, 'validation': 1, 'test': 1}" in proc.stdout
    assert "skipped 2 (2 broken or unusable" in proc.stderr  # the per-split report is shown
    assert "tensorflow" not in proc.stderr.lower().replace("tensorflow_datasets", "")


def test_options_make_a_new_config_name():
    cls = registry.builder_cls("lrs3")
    assert set(build.config_options(cls)) >= {"units_k", "units_codebook", "roi_dir",
                                               "pretrain_max_seconds"}
    (config,) = build.resolve_configs(cls, [], {"units_k": 100, "roi_dir": "/crops"})
    assert (config.name, config.units_k, config.roi_dir) == ("en_k100", 100, "/crops")
    (config,) = build.resolve_configs(cls, ["en"], {"roi_dir": "/crops"})
    assert config.name == "en"  # where crops are found does not change the data
    with pytest.raises(SystemExit, match="choose with --config: en, es"):
        build.resolve_configs(registry.builder_cls("common_voice"), [], {})
