"""A non-editable install works outside the repository: the wheel, installed into a fresh venv,
gives a `lipjax` command that finds the stage configs by name and transcribes a video with a
run trained here. The venv sees the test's own dependencies through a .pth line (installing
them again would take CI minutes and test pip, not lipjax; `make` installs them from the
ranges and constraints on every fresh clone), and pip installs the wheel alone: what the wheel
holds and its entry point are what is checked. Slow: a wheel build and several processes."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from configs import finetune
from lipjax.preprocess import write_video
from lipjax.train.trainer import train
from tests import fixtures_builder as fb

REPO = pathlib.Path(__file__).resolve().parents[1]


def _run(args: list, cwd: pathlib.Path, timeout: int = 1800) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["JAX_PLATFORMS"] = "cpu"
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_runs_lipjax_outside_the_repository(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    # A tiny stage-3 run and a mouth-crop video to read, made with the repository's code.
    data_dir = fb.tiny_data_dir()
    config = finetune.get_config(f"tiny,lang=en,init=scratch,builder={fb.BUILDER},"
                                 f"data_dir={data_dir},steps=2")
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    config.train.update(eval_every=2, eval_batches=1, async_checkpoint=False)
    workdir = tmp_path / "run"
    assert train(config, str(workdir))["step"] == 2
    crops = np.asarray(fb.example("en", "video", "test", 1)["video"])[:30]
    write_video(outside / "mouth.mp4", crops, crf=0)

    wheels = tmp_path / "wheels"
    proc = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                 "-q", REPO, "-w", wheels], outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = wheels.glob("lipjax-*.whl")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", venv], outside).returncode == 0
    site = _run([venv / "bin" / "python", "-c", "import sysconfig; "
                 "print(sysconfig.get_paths()['purelib'])"], outside).stdout.strip()
    # The dependencies' folders (a plain path line: the repository's editable-install hook,
    # a .pth of that folder, is not run from here).
    deps = [p for p in sys.path if p.endswith("site-packages")]
    pathlib.Path(site, "dependencies.pth").write_text("\n".join(deps) + "\n")
    proc = _run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps",
                 "--no-index", str(wheel)], outside)
    assert proc.returncode == 0, proc.stderr[-3000:]

    proc = _run([venv / "bin" / "python", "-c", "import lipjax, configs; "
                 "print(lipjax.__file__, configs.__file__)"], outside)
    assert proc.returncode == 0 and str(REPO) not in proc.stdout, proc.stdout + proc.stderr
    lipjax = venv / "bin" / "lipjax"
    proc = _run([lipjax, "--help"], outside)
    assert proc.returncode == 0 and "finetune" in proc.stdout, proc.stderr[-2000:]
    proc = _run([lipjax, "train", "finetune:tiny,lang=it", "--help"], outside)
    assert proc.returncode == 0 and "--workdir" in proc.stdout + proc.stderr
    proc = _run([lipjax, "transcribe", f"--workdir={workdir}", "--roi", "--greedy",
                 "--video=mouth.mp4"], outside)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("\n") == 1  # the transcript, alone on stdout
