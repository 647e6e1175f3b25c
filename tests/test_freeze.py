"""Frozen means frozen: sub-trees in config optim.freeze keep every variable (parameters and
BatchNorm running statistics) bit-identical through training, run in eval mode (dropout off,
BatchNorm reading its statistics), while the rest trains."""

import jax
import numpy as np
import pytest
from flax import nnx

from configs import finetune
from lipjax.tasks import get_task
from lipjax.train.checkpoint import restore_params
from lipjax.train.modes import frozen_modules, set_train_mode
from lipjax.train.trainer import train
from tests import fixtures_builder as fb

FAST = (("data.frame_buckets", (32,)), ("data.max_frames", 32), ("data.crop", 32),
        ("data.token_bucket", 64))


def _config(data_dir, steps, freeze):
    config = finetune.get_config(f"tiny,lang=en,init=scratch,data_dir={data_dir},"
                                 f"builder={fb.BUILDER},steps={steps}")
    for path, value in FAST:
        block, key = path.split(".")
        config[block][key] = value
    config.optim.freeze = freeze
    config.optim.schedule = "constant"
    config.train.update(eval_every=steps, eval_batches=1, eval_at_start=True,
                        checkpoint_every=steps, keep=3, log_every=1)
    return config


def _leaves(tree):
    return jax.tree_util.tree_flatten_with_path(tree)[0]


@pytest.mark.slow  # a real 3-step training run with checkpoints: `make test-slow` (CI runs it)
def test_frozen_subtrees_are_bit_identical_after_training(tmp_path):
    """Stage 3 with the real front end (3D conv + BatchNorm + ResNet trunk): after 3 steps the
    frozen visual encoder, statistics included, equals the step-0 checkpoint bit for bit,
    while the decoder moved."""
    config = _config(fb.tiny_data_dir(), 3, ("visual",))
    train(config, str(tmp_path))
    start, end = restore_params(str(tmp_path), 0), restore_params(str(tmp_path), 3)
    frozen = _leaves(start["visual"])
    assert any("mean" in jax.tree_util.keystr(p) for p, _ in frozen)  # BatchNorm statistics
    for (path, a), (_, b) in zip(frozen, _leaves(end["visual"]), strict=True):
        np.testing.assert_array_equal(a, b, err_msg=f"visual{jax.tree_util.keystr(path)}")
    moved = [not np.array_equal(a, b) for (_, a), (_, b) in
             zip(_leaves(start["decoders"]), _leaves(end["decoders"]), strict=True)]
    assert sum(moved) > len(moved) // 2


def test_frozen_modules_run_in_eval_mode():
    config = _config(fb.tiny_data_dir(), 1, ("visual",))
    model = get_task("finetune").create_model(config, nnx.Rngs(0))
    set_train_mode(model, config.optim.freeze)
    frozen_ids = {id(m) for root in frozen_modules(model, config.optim.freeze)
                  for _, m in root.iter_modules()}
    seen = {"frozen": 0, "trained": 0}
    for _, module in model.iter_modules():
        flags = [getattr(module, name) for name in ("deterministic", "use_running_average")
                 if getattr(module, name, None) is not None]
        if not flags:
            continue
        if id(module) in frozen_ids:
            seen["frozen"] += 1
            assert all(flags), type(module).__name__
        else:
            seen["trained"] += 1
            assert not any(flags), type(module).__name__
    assert seen["frozen"] and seen["trained"]


def test_unknown_freeze_entry_names_the_choices():
    config = _config(fb.tiny_data_dir(), 1, ("visul",))
    model = get_task("finetune").create_model(config, nnx.Rngs(0))
    with pytest.raises(ValueError, match="visul.*visual"):
        set_train_mode(model, config.optim.freeze)


def test_a_part_the_model_was_built_without_has_nothing_to_freeze():
    """The scratch lip reader has no unit head (attribute None): freezing it is a no-op, as
    the recipe freezes ("visual", "unit_head") for every method built on stage 1."""
    config = _config(fb.tiny_data_dir(), 1, ("visual", "unit_head"))
    model = get_task("finetune").create_model(config, nnx.Rngs(0))
    assert model.unit_head is None
    assert frozen_modules(model, config.optim.freeze) == [model.visual]
