"""Resume under failures: two SIGKILLs (one while an asynchronous save is in flight) end
bit-identical to an uninterrupted run, with each step once in metrics.jsonl; a truncated file in
the latest checkpoint falls back to the previous step with a message naming the directory; a
second run on a live run's workdir refuses and names the holder, a dead holder's lock is taken
over; a resumed workdir refuses a config whose model no longer fits its checkpoints (nothing on
disk changes) and resumes one that changes only values such as the learning rate. Same tiny
stage-1 setup as tests/test_trainer.py (one 32-frame bucket, 32x32 crops)."""

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from configs import units_pretrain
from lipjax.train.checkpoint import (
    IncompatibleCheckpointError,
    restore_state_numpy,
    saved_config_path,
)
from lipjax.train.tb import read_metrics
from lipjax.train.trainer import train
from lipjax.train.workdir import WorkdirLocked
from tests import fixtures_builder as fb

REPO = Path(__file__).resolve().parents[1]
# (config path, value): one batch shape, constant lr (the schedule must not depend on
# num_steps), checkpoints every 2 steps, a metrics record every step.
OVERRIDES = (("data.frame_buckets", (32,)), ("data.max_frames", 32), ("data.crop", 32),
             ("data.token_bucket", 64), ("train.eval_every", 0), ("train.log_every", 1),
             ("train.checkpoint_every", 2), ("train.keep", 2), ("optim.schedule", "constant"))


# Minutes of kills and restarts: `make test-slow`, which .ci/run also runs.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir():
    return fb.tiny_data_dir()


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A compilation cache shared by the in-process runs and the subprocesses."""
    path = str(tmp_path_factory.mktemp("jax_cache"))
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", path)
    compilation_cache.reset_cache()
    yield path
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()


def _arg(data_dir, steps):
    return (f"tiny,data_dir={data_dir},builder={fb.BUILDER},langs={'+'.join(fb.LANGS)},"
            f"steps={steps}")


def _config(data_dir, steps, **train):
    config = units_pretrain.get_config(_arg(data_dir, steps))
    for path, value in OVERRIDES:
        block, key = path.split(".")
        config[block][key] = value
    config.train.update(train)
    return config


def _launch(data_dir, steps, workdir, cache_dir, log):
    cmd = [sys.executable, "-m", "tests.train_with_fixture",
           f"--config=configs/units_pretrain.py:{_arg(data_dir, steps)}",
           *[f"--config.{p}={v}" for p, v in OVERRIDES], f"--workdir={workdir}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=cache_dir)
    env.pop("XLA_FLAGS", None)
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _records(workdir):
    """Complete train records in metrics.jsonl (another process may be appending)."""
    path = Path(workdir) / "metrics.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return sum('"split": "train"' in line for line in lines)


def _in_flight(workdir):
    directory = Path(workdir) / "checkpoints"
    return directory.is_dir() and any("tmp" in p.name for p in directory.iterdir())


def _wait(proc, until, what, log_path, timeout=600):
    deadline = time.monotonic() + timeout
    while not until():
        assert proc.poll() is None, f"exited before {what}:\n{log_path.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.005)


def test_two_sigkills_end_bit_identical(data_dir, tmp_path, cache_dir):
    steps = 8
    straight = tmp_path / "straight"
    assert train(_config(data_dir, steps), str(straight))["step"] == steps

    workdir, log_path = tmp_path / "killed", tmp_path / "log.txt"
    caught_in_flight = False
    with open(log_path, "w") as log:
        # Kill 1: once step 2 is saved, the moment the next asynchronous save is in flight
        # (its temporary directory exists), or failing that at step 5's record.
        proc = _launch(data_dir, steps, workdir, cache_dir, log)
        try:
            _wait(proc, lambda: _records(workdir) >= 2, "2 steps", log_path)
            with pytest.raises(WorkdirLocked) as e:  # a second run on the live run's workdir
                train(_config(data_dir, steps), str(workdir))
            assert socket.gethostname() in str(e.value) and f"pid {proc.pid}" in str(e.value)
            _wait(proc, lambda: (workdir / "checkpoints" / "2").is_dir(), "checkpoint 2",
                  log_path)
            _wait(proc, lambda: _in_flight(workdir) or _records(workdir) >= 5, "a save",
                  log_path)
            caught_in_flight = _in_flight(workdir)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        # Kill 2: two steps after the resumed step, so steps run twice.
        proc = _launch(data_dir, steps, workdir, cache_dir, log)
        try:
            _wait(proc, lambda: "resumed from" in log_path.read_text(), "a resume", log_path)
            resumed = int(log_path.read_text().split("resumed from ")[1].split()[0]
                          .rsplit("/", 1)[1])
            _wait(proc, lambda: _records(workdir) >= resumed + 2, "2 more steps", log_path)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
        proc = _launch(data_dir, steps, workdir, cache_dir, log)
        assert proc.wait(timeout=600) == 0, log_path.read_text()[-4000:]
    text = log_path.read_text()
    assert text.count("resumed from") == 2 and text.count("taking over the stale lock") == 2
    print(f"first kill during an async save: {caught_in_flight}")

    lines = (workdir / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == \
        list(range(1, steps + 1))  # the file itself: each step once
    want = [(r["step"], r["loss"]) for r in read_metrics(str(straight), "train")]
    got = [(r["step"], r["loss"]) for r in read_metrics(str(workdir), "train")]
    assert got == want  # floats printed exactly: bit-identical losses
    a, b = restore_state_numpy(str(straight), steps), restore_state_numpy(str(workdir), steps)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not (workdir / "lock.json").exists()


def test_truncated_checkpoint_falls_back(data_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    train(_config(data_dir, 4, async_checkpoint=False), str(workdir))
    files = [p for p in (workdir / "checkpoints" / "4" / "state").rglob("*") if p.is_file()]
    biggest = max(files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:biggest.stat().st_size // 2])

    with caplog.at_level(logging.WARNING, logger="lipjax"):
        summary = train(_config(data_dir, 6, async_checkpoint=False), str(workdir))
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any(f"checkpoint {workdir / 'checkpoints' / '4'} is unreadable" in w
               and "falling back to step 2" in w for w in warnings), warnings
    assert summary["step"] == 6
    assert (workdir / "checkpoints" / "corrupt_4").is_dir()
    assert [r["step"] for r in read_metrics(str(workdir), "train")] == list(range(1, 7))
    assert int(restore_state_numpy(str(workdir))["step"]) == 6


def test_stale_lock_is_taken_over(data_dir, tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # reaped: its pid names no process now
    (workdir / "lock.json").write_text(
        f'{{"host": "{socket.gethostname()}", "pid": {dead.pid}, "started": "earlier"}}')
    assert train(_config(data_dir, 1), str(workdir))["step"] == 1
    assert not (workdir / "lock.json").exists()


def test_changed_model_dim_refuses_and_changed_lr_resumes(data_dir, tmp_path, caplog):
    workdir = tmp_path / "run"
    assert train(_config(data_dir, 2, async_checkpoint=False), str(workdir))["step"] == 2
    root = workdir / "checkpoints"
    steps = sorted(p.name for p in root.iterdir())
    assert steps and all(name.isdigit() for name in steps)
    files = {str(p.relative_to(root)): p.stat().st_size for p in root.rglob("*") if p.is_file()}

    narrow = _config(data_dir, 2, async_checkpoint=False)
    narrow.model.dim = 32
    with pytest.raises(IncompatibleCheckpointError) as e:
        train(narrow, str(workdir))
    message = str(e.value)
    assert re.search(r"model/visual/encoder/\S+/kernel: checkpoint \([^)]*64\) float32, "
                     r"model \([^)]*32\) float32", message), message
    assert f"written by the config {saved_config_path(root / steps[-1])}" in message
    assert "model.dim: 32 (now) vs 64 (checkpoint)" in message
    assert {str(p.relative_to(root)): p.stat().st_size
            for p in root.rglob("*") if p.is_file()} == files  # every step intact

    slower = _config(data_dir, 2, async_checkpoint=False)
    slower.optim.lr = 5e-4
    with caplog.at_level(logging.INFO, logger="lipjax"):
        assert train(slower, str(workdir))["step"] == 2
    assert f"resumed from {root}/{steps[-1]}" in caplog.text
    assert sorted(p.name for p in root.iterdir()) == steps
