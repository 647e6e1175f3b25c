"""Loading a checkpoint logs no "Metadata file does not exist: .../_CHECKPOINT_METADATA": the
step metadata sits in the step folder, where the CheckpointManager writes it, and later stages
read the "state" item through its handler (tasks/common.restore_state_numpy), which does not
look for it inside the item folder as an Orbax Checkpointer does."""

from __future__ import annotations

import logging

import numpy as np
import orbax.checkpoint as ocp

from lipjax.tasks.common import resolve_step_dir, restore_params
from lipjax.train import checkpoint as ckpt_lib

WARNING = "Metadata file does not exist"


def _save(workdir) -> dict:
    state = {"model": {"w": np.arange(3, dtype=np.float32)}, "step": 1}
    ckpt = ckpt_lib.Checkpointer(str(workdir), async_save=False)
    ckpt.save(1, state, None)
    ckpt.close()
    return state


def test_save_and_load_log_no_missing_metadata(tmp_path, caplog):
    state = _save(tmp_path)
    with caplog.at_level(logging.INFO):
        params = restore_params(str(tmp_path))
        ckpt = ckpt_lib.Checkpointer(str(tmp_path), async_save=False)
        restored = ckpt.restore(1, state, None)
        ckpt.close()
    np.testing.assert_array_equal(params["w"], state["model"]["w"])
    np.testing.assert_array_equal(restored["model"]["w"], state["model"]["w"])
    assert (resolve_step_dir(str(tmp_path)) / "_CHECKPOINT_METADATA").exists()
    assert WARNING not in caplog.text


def test_the_warning_is_seen_where_it_is_logged(tmp_path, caplog):
    """The capture above would see it: a Checkpointer on the item folder logs it."""
    _save(tmp_path)
    with caplog.at_level(logging.WARNING), ocp.PyTreeCheckpointer() as reader:
        reader.metadata(resolve_step_dir(str(tmp_path)) / "state")
    assert WARNING in caplog.text
