"""The trainer on 2 processes x 2 CPU devices (jax.distributed, gloo), launched by
experiments/launch/cpu_2proc.sh, against 1 process x 4 devices reading the same global batches
(`--data_shards=2`): per-step losses, final parameters, and checkpoints that move between the
two process counts in both directions.

Tolerance. Both runs compute the same float32 program on the same rows; only the order in which
the gradient all-reduce adds the 4 devices' partial sums differs (in-process vs gloo), so values
differ by float32 rounding (relative ~1e-7 per operation). Losses: rtol 1e-5 (3 steps of
rounding growth, far below the change one different clip makes). Parameters: Adam divides each
gradient component by its own RMS, so a component whose gradient is at rounding-noise level can
move by up to the learning rate either way in each step: atol = 2 x lr x steps, and most
parameters must agree far better (median |difference| <= 1e-6).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from lipjax.train.checkpoint import restore_state_numpy
from lipjax.train.tb import read_metrics
from tests import fixtures_builder as fb

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / "experiments" / "launch" / "cpu_2proc.sh"
LR = 1e-3
FAST = ["--config.data.frame_buckets=(32,)", "--config.data.max_frames=32",
        "--config.data.crop=32", "--config.data.token_bucket=64", "--config.train.log_every=1",
        "--config.train.eval_every=0", "--config.train.checkpoint_every=1",
        "--config.optim.schedule=constant", f"--config.optim.lr={LR}"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_dir():
    return fb.tiny_data_dir()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("jax_cache"))
    e = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
             JAX_COMPILATION_CACHE_DIR=cache, PYTHON=sys.executable,
             TRAIN_MODULE="tests.train_with_fixture")
    e.pop("XLA_FLAGS", None)
    return e


def _stage1(data_dir, steps):
    return (f"--config=configs/units_pretrain.py:tiny,data_dir={data_dir},builder={fb.BUILDER},"
            f"langs={'+'.join(fb.LANGS)},steps={steps}")


def _stage3(data_dir, steps):
    return (f"--config=configs/finetune.py:tiny,lang=en,init=scratch,data_dir={data_dir},"
            f"builder={fb.BUILDER},steps={steps}")


def run_two(config, workdir, env, log_dir, *extra):
    """2 processes x 2 devices through the launch script."""
    cmd = ["bash", str(LAUNCH), config, *FAST, *extra, f"--workdir={workdir}"]
    res = subprocess.run(cmd, cwd=REPO, env=dict(env, LOG_DIR=str(log_dir)),
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def run_one(config, workdir, env, *extra):
    """1 process x 4 devices reading the 2 data shards that 2 processes read."""
    cmd = [sys.executable, "-m", "tests.train_with_fixture", config, *FAST, *extra,
           "--cpu_devices=4", "--data_shards=2", f"--workdir={workdir}"]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def losses(workdir):
    return {r["step"]: r["loss"] for r in read_metrics(str(workdir), "train")}


def assert_close_runs(a, b, steps, step=None):
    la, lb = losses(a), losses(b)
    assert sorted(la) == sorted(lb) == list(range(1, steps + 1)), (la, lb)
    np.testing.assert_allclose([lb[s] for s in sorted(lb)], [la[s] for s in sorted(la)],
                               rtol=1e-5)
    sa, sb = restore_state_numpy(str(a), step), restore_state_numpy(str(b), step)
    assert jax.tree.structure(sa) == jax.tree.structure(sb)
    assert int(sa["step"]) == int(sb["step"]) == steps
    diffs = []
    for x, y in zip(jax.tree.leaves(sa["model"]), jax.tree.leaves(sb["model"]), strict=True):
        np.testing.assert_allclose(y, x, rtol=0, atol=2 * LR * steps)
        diffs.append(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64)).ravel())
    assert np.median(np.concatenate(diffs)) <= 1e-6


def test_stage1_two_processes_match_one_and_checkpoints_cross(data_dir, env, tmp_path):
    two = tmp_path / "two"
    out = run_two(_stage1(data_dir, 3), two, env, tmp_path / "logs_two")
    assert "finished at step 3" in out
    logs = [(tmp_path / "logs_two" / f"process_{i}.log").read_text() for i in range(2)]
    assert "finished at step 3" in logs[0] and "finished at step" not in logs[1]
    assert "model:" in logs[0] and "model:" not in logs[1]  # process 0 alone logs
    assert "Connecting to JAX distributed" not in logs[0]  # no library INFO chatter
    assert [r["step"] for r in read_metrics(str(two), "train")] == [1, 2, 3]
    data = sorted(p.name for p in (two / "checkpoints" / "3" / "data").glob("shard_*"))
    assert data == ["shard_0-of-2.json", "shard_1-of-2.json"]  # each process wrote its shard

    # 1 process -> 2 processes: steps 1-2 in one process, step 3 in two.
    mixed = tmp_path / "one_then_two"
    run_one(_stage1(data_dir, 2), mixed, env)
    run_two(_stage1(data_dir, 3), mixed, env, tmp_path / "logs_mixed")
    assert_close_runs(two, mixed, 3)

    # 2 processes -> 1 process: the two-process checkpoint of step 2, resumed in one.
    back = tmp_path / "two_then_one"
    shutil.copytree(two, back, ignore=shutil.ignore_patterns("lock.json"))
    shutil.rmtree(back / "checkpoints" / "3")
    log = run_one(_stage1(data_dir, 3), back, env)
    assert f"resumed from {back / 'checkpoints'}/2" in log
    assert_close_runs(two, back, 3)


def test_stage3_two_processes_match_one(data_dir, env, tmp_path):
    """Training as above, and the validation scores of the last step: each process scores its
    own clips and the processes add their edit and reference-length counts (padding rows
    excluded), so 2 processes give exactly the corpus-level WER/CER that 1 process gives."""
    two, one = tmp_path / "two", tmp_path / "one"
    evaluate = "--config.train.eval_every=2"
    run_two(_stage3(data_dir, 2), two, env, tmp_path / "logs", evaluate)
    run_one(_stage3(data_dir, 2), one, env, evaluate)
    assert_close_runs(two, one, 2)
    scores = [read_metrics(str(w), "eval") for w in (two, one)]
    assert [r["step"] for r in scores[0]] == [r["step"] for r in scores[1]] == [2]
    names = {"wer", "cer", "wer_ctc"}
    assert names <= set(scores[0][0]), scores[0]
    assert {k: scores[0][0][k] for k in names} == {k: scores[1][0][k] for k in names}


def test_dead_peer_ends_the_other_process(data_dir, env, tmp_path):
    """SIGKILL process 1 mid-run: process 0 must exit non-zero with a message, not hang."""
    import portpicker

    port = portpicker.pick_unused_port()
    workdir = tmp_path / "run"
    procs, logs = [], []
    for i in range(2):
        logs.append(tmp_path / f"process_{i}.log")
        cmd = [sys.executable, "-m", "tests.train_with_fixture", _stage1(data_dir, 10000), *FAST,
               "--config.train.checkpoint_every=0", "--heartbeat_timeout_s=10",
               f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2",
               f"--process_id={i}", "--cpu_devices=2", f"--workdir={workdir}"]
        with open(logs[-1], "w") as f:
            procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f,
                                          stderr=subprocess.STDOUT))
    try:
        deadline = time.monotonic() + 600
        while len(read_metrics(str(workdir), "train")) < 2:
            assert all(p.poll() is None for p in procs), logs[0].read_text()[-3000:]
            assert time.monotonic() < deadline, "no 2 steps in 600 s"
            time.sleep(0.5)
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait()
        killed = time.monotonic()
        rc = procs[0].wait(timeout=180)
        waited = time.monotonic() - killed
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    text = logs[0].read_text()
    assert rc != 0, text[-3000:]
    assert waited < 120, f"process 0 took {waited:.0f} s to notice"
    assert "A peer process may have died" in text or "heartbeat" in text.lower(), text[-3000:]
    print(json.dumps({"dead_peer_exit_s": round(waited, 1), "rc": rc}))
