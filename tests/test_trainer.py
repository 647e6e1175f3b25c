"""The training loop end to end on the tiny fixture corpus (tests/fixtures_builder.py): a smoke run,
an exact resume (model, optimizer, RNG and input-pipeline state), the NaN guard, and SIGTERM
preemption of `python -m lipjax.train`.

Runs use the tiny units_pretrain config with one frame bucket of 32 frames and 32x32 crops, so
every batch has the same shape (one compilation) and a step takes about a second on a CPU core.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.experimental.compilation_cache import compilation_cache

from configs import units_pretrain
from lipjax.train.checkpoint import restore_params, restore_state_numpy
from lipjax.train.tb import read_metrics
from lipjax.train.trainer import NonFiniteLossError, train
from tests import fixtures_builder as fb

REPO = Path(__file__).resolve().parents[1]
LANGS = "+".join(fb.LANGS)
# (path, value) overrides that keep every batch one small shape: clips of <= 32 frames (longer
# ones are dropped), 32x32 crops, id sequences padded to 64 (the longest fixture text is shorter).
FAST = (("data.frame_buckets", (32,)), ("data.max_frames", 32), ("data.crop", 32),
        ("data.token_bucket", 64))


@pytest.fixture(scope="module")
def data_dir():
    return fb.tiny_data_dir()


@pytest.fixture(scope="module", autouse=True)
def cache_dir(tmp_path_factory):
    """A persistent compilation cache for this module (restored afterwards).

    Every `train()` call compiles the model init and the train step again (new closures): about
    20 s each on a CPU core. With the cache, a run whose programs an earlier run compiled
    (same model, same optimizer constants) loads them instead; results are the same executable.
    """
    path = str(tmp_path_factory.mktemp("jax_cache"))
    previous = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", path)
    compilation_cache.reset_cache()  # the cache is set up once per process, at the first compile
    yield path
    jax.config.update("jax_compilation_cache_dir", previous)
    compilation_cache.reset_cache()


def _arg(data_dir, steps):
    return f"tiny,data_dir={data_dir},builder={fb.BUILDER},langs={LANGS},steps={steps}"


def _config(data_dir, steps, **train_overrides):
    config = units_pretrain.get_config(_arg(data_dir, steps))
    for path, value in FAST:
        block, key = path.split(".")
        config[block][key] = value
    config.train.eval_every = 0
    config.train.update(train_overrides)
    return config


def _train_losses(workdir):
    return [(r["step"], r["loss"]) for r in read_metrics(str(workdir), "train")]


def _complete_train_records(workdir):
    """Train records in metrics.jsonl so far, while another process appends to it (a line that
    is still being written is not counted)."""
    path = Path(workdir) / "metrics.jsonl"
    lines = path.read_text().split("\n")[:-1] if path.exists() else []
    return sum('"split": "train"' in line for line in lines)


def _checkpoint_steps(workdir):
    directory = Path(workdir) / "checkpoints"
    if not directory.is_dir():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_smoke_two_steps(data_dir, tmp_path):
    config = _config(data_dir, 2, eval_every=2, eval_batches=1)
    summary = train(config, str(tmp_path))

    assert summary["step"] == 2 and not summary["preempted"]
    assert summary["checkpoint_dir"] == str(tmp_path / "checkpoints")
    assert 2 in _checkpoint_steps(tmp_path)
    assert (tmp_path / "checkpoints" / "2" / "state").is_dir()
    assert (tmp_path / "checkpoints" / "2" / "data" / "shard_0-of-1.json").is_file()
    assert int(restore_state_numpy(str(tmp_path))["step"]) == 2
    params = restore_params(str(tmp_path))
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))

    records = read_metrics(str(tmp_path), "train")
    assert [r["step"] for r in records] == [1, 2]
    for r in records:
        assert isinstance(r["loss"], float) and np.isfinite(r["loss"]), r
        assert r["clips_per_s"] > 0
    evals = read_metrics(str(tmp_path), "eval")
    assert [r["step"] for r in evals] == [2]
    names = {"per", "ver", "lid_accuracy"}
    per_source = {f"{fb.BUILDER}/{lang}_video/validation/{k}" for lang in fb.LANGS
                  for k in names}
    assert set(summary["eval"]) == names | per_source  # over all sources, and each alone
    assert summary["eval"]["per"] == evals[0]["per"]
    assert (tmp_path / "config.json").is_file() and any((tmp_path / "tb").iterdir())


@pytest.mark.slow  # a real training run with evaluations: `make test-slow` (CI runs it)
def test_eval_at_start_keeps_the_step0_weights_as_a_candidate(data_dir, tmp_path):
    """train.eval_at_start: the weights the run starts from are evaluated and checkpointed at
    step 0 (so that selection on validation can prefer them); a resumed run does not repeat it."""
    config = _config(data_dir, 2, eval_every=2, eval_batches=1, eval_at_start=True, keep=3,
                     checkpoint_every=2)
    train(config, str(tmp_path))
    assert [r["step"] for r in read_metrics(str(tmp_path), "eval")] == [0, 2]
    assert _checkpoint_steps(tmp_path) == [0, 2]
    start, end = restore_params(str(tmp_path), 0), restore_params(str(tmp_path), 2)
    assert int(restore_state_numpy(str(tmp_path), 0)["step"]) == 0
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool((a != b).any()), start, end))
    assert any(moved)  # step 0 holds the starting weights, not the trained ones
    config.train.num_steps = 4
    train(config, str(tmp_path))
    assert [r["step"] for r in read_metrics(str(tmp_path), "eval")] == [0, 2, 4]


@pytest.mark.slow
def test_resume_is_exact(data_dir, tmp_path):
    """4 steps straight == 2 steps, stop, resume to 4: same per-step losses, same final state.

    The constant learning rate makes the schedule independent of num_steps (a cosine schedule
    stretches with it), and every step updates the weights. Steps 3 and 4 then depend on the
    restored weights (loss 3), the data position (batch 3), the dropout RNG streams, and the
    Adam moments and step count (the update between losses 3 and 4).
    """

    def config(steps):
        c = _config(data_dir, steps, checkpoint_every=2, log_every=1, async_checkpoint=False)
        c.optim.schedule = "constant"
        return c

    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(config(4), str(straight))["step"] == 4
    assert train(config(2), str(split))["step"] == 2
    assert [s for s, _ in _train_losses(split)] == [1, 2]
    assert train(config(4), str(split))["step"] == 4

    want, got = _train_losses(straight), _train_losses(split)
    assert [s for s, _ in want] == [s for s, _ in got] == [1, 2, 3, 4]  # resumed, not restarted
    assert all(np.isfinite(loss) for _, loss in want)
    assert len({loss for _, loss in want}) == 4  # the steps differ, so equality means something
    # metrics.jsonl holds float32 values printed exactly as Python floats: bit-level equality.
    np.testing.assert_array_equal(np.float32([loss for _, loss in got]),
                                  np.float32([loss for _, loss in want]))

    a, b = (restore_state_numpy(str(d), 4) for d in (straight, split))
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)  # weights, BN stats, Adam, RNG keys
    assert _checkpoint_steps(straight) == _checkpoint_steps(split) == [2, 4]


@pytest.mark.slow
def test_non_finite_loss_stops_without_saving(data_dir, tmp_path):
    """An absurd learning rate blows the weights up after the first update. Three runs find the
    same bad step through each check: at a log step, before a checkpoint, and one step late
    (neither), which must still name the step whose loss was non-finite."""
    found = {}
    for log_every, checkpoint_every in ((1, 1), (100, 1), (100, 0)):
        workdir = tmp_path / f"log{log_every}_ckpt{checkpoint_every}"
        config = _config(data_dir, 6, log_every=log_every, checkpoint_every=checkpoint_every)
        config.optim.schedule = "constant"
        config.optim.lr = 1e12
        with pytest.raises(NonFiniteLossError, match=r"at step \d+") as e:
            train(config, str(workdir))
        message = str(e.value)
        bad = found[log_every, checkpoint_every] = int(re.search(r"at step (\d+)",
                                                                 message).group(1))
        assert str(workdir) in message

        logged = _train_losses(workdir)
        assert [s for s, _ in logged] == (list(range(1, bad)) if log_every == 1 else [])
        assert all(np.isfinite(loss) for _, loss in logged)  # nothing logged from step `bad`
        steps = _checkpoint_steps(workdir)
        assert f"last checkpoint: {steps[-1] if steps else None}" in message
        if checkpoint_every:  # saved every step: the latest is the last finite one
            assert steps and steps[-1] == bad - 1, (steps, bad)
            params = restore_params(str(workdir))
            assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
        else:
            assert steps == []
    assert len(set(found.values())) == 1 and found[1, 1] >= 2, found


@pytest.mark.slow
def test_sigterm_saves_and_exits_cleanly(data_dir, tmp_path, cache_dir):
    workdir = tmp_path / "run"
    overrides = [f"--config.{path}={value}" for path, value in FAST]
    # The constant schedule gives the resume test's train step (loaded from the shared cache).
    overrides += ["--config.train.log_every=1", "--config.optim.schedule=constant"]
    # `python -m lipjax.train`, after importing the fixture builder: TFDS only knows builders
    # whose module was imported, and lipjax looks for them in data_builders/ only.
    main = ("import runpy, tests.fixtures_builder; "
            "runpy.run_module('lipjax.train', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", main,
           f"--config=configs/units_pretrain.py:{_arg(data_dir, 10000)}", *overrides,
           f"--workdir={workdir}"]
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu",
               JAX_COMPILATION_CACHE_DIR=cache_dir)
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 300
            while _complete_train_records(workdir) < 2:
                assert proc.poll() is None, f"exited early:\n{err.read_text()[-5000:]}"
                assert time.monotonic() < deadline, "no 2 train steps in 300 s"
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    log = out.read_text() + err.read_text()
    assert rc == 0, log[-5000:]

    stopped = int(re.search(r"finished at step (\d+)", log).group(1))
    assert 2 <= stopped < 10000
    assert f"SIGTERM: saved checkpoint at step {stopped}" in log
    assert _checkpoint_steps(workdir) == [stopped]  # checkpoint_every is 5000 here
    assert int(restore_state_numpy(str(workdir))["step"]) == stopped
    assert (workdir / "checkpoints" / str(stopped) / "data" / "shard_0-of-1.json").is_file()
    assert [r["step"] for r in read_metrics(str(workdir), "train")] == list(range(1, stopped + 1))
