"""Every builder opens next to TFDS's own datasets in one process, in any order: no name is
taken twice (`common_voice` is TFDS's; ours is `lipjax_common_voice`). Each order runs in a
fresh process, since registration is process-wide."""

from __future__ import annotations

import os
import pathlib
import random
import subprocess
import sys

import pytest

from data_builders import registry

REPO = pathlib.Path(__file__).resolve().parents[1]
# Opens TFDS's own Common Voice (which imports all of TFDS's legacy builders) at `tfds_at`
# among ours, then every builder class again by its TFDS name.
SCRIPT = """
import sys, tensorflow_datasets as tfds
from data_builders import registry
names, tfds_at = sys.argv[1].split(","), int(sys.argv[2])
opened = []
for i, name in enumerate(names):
    if i == tfds_at:
        opened.append(tfds.builder_cls("common_voice").__module__)
    cls = registry.builder_cls(name)
    assert tfds.builder_cls(cls.name) is cls, name
    opened.append(cls.name)
assert opened.count("tensorflow_datasets.audio.commonvoice") == 1, opened
print(" ".join(opened))
"""


@pytest.mark.parametrize("seed", [0, 1])
def test_all_builders_open_in_one_process_in_any_order(seed):
    names = list(registry.SHIPPED)
    random.Random(seed).shuffle(names)
    tfds_at = 0 if seed == 0 else len(names) - 1
    proc = subprocess.run([sys.executable, "-c", SCRIPT, ",".join(names), str(tfds_at)],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "already registered" not in proc.stderr and "Traceback" not in proc.stderr, \
        proc.stderr[-4000:]
    assert "lipjax_common_voice" in proc.stdout.split()


def test_no_builder_takes_a_tfds_name():
    ours = {registry.tfds_name(n) for n in registry.SHIPPED}
    assert "lipjax_common_voice" in ours and "common_voice" not in ours
