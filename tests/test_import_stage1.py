"""A converted checkpoint seeds stage 1: `python -m lipjax.io.convert` on a random-weight
auto_avsr file (tests/test_import_auto_avsr.py's reference), then
`configs/units_pretrain.py:tiny,init_from=OUT` builds the converted architecture, loads the front
end + encoder (fresh unit and language-ID heads), computes what the reference computes at its
first forward pass, and trains."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the numerical checks need PyTorch (the torch extra)")

from flax import nnx  # noqa: E402

from configs import units_pretrain  # noqa: E402
from lipjax.io import convert  # noqa: E402
from lipjax.tasks import units_pretrain as task  # noqa: E402
from lipjax.train.checkpoint import restore_params  # noqa: E402
from lipjax.train.tb import read_metrics  # noqa: E402
from lipjax.train.trainer import train  # noqa: E402
from tests import fixtures_builder as fb  # noqa: E402
from tests import test_import_auto_avsr as auto_avsr  # noqa: E402
from tests import torch_reference as ref  # noqa: E402


@pytest.mark.slow  # the real trainer: minutes on 2 cores (`make test-slow`, run by CI)
def test_converted_checkpoint_seeds_stage1(tmp_path):
    reference = ref.randomize(auto_avsr.E2E(), seed=3)
    checkpoint = str(tmp_path / "vsr.pth")
    torch.save(reference.state_dict(), checkpoint)
    out = str(tmp_path / "converted")
    assert convert.main(["auto_avsr", checkpoint, out]) == 0

    config = units_pretrain.get_config(
        f"tiny,data_dir={fb.tiny_data_dir()},builder={fb.BUILDER},langs={'+'.join(fb.LANGS)},"
        f"steps=2,init_from={out}")
    config.data.frame_buckets, config.data.max_frames, config.data.crop = (32,), 32, 32
    config.data.token_bucket, config.train.eval_every = 64, 0
    assert (config.model.dim, config.model.frontend_width, config.model.ffn_act) == (
        auto_avsr.DIM, auto_avsr.WIDTH, "relu")

    # What the trainer does before step 1 (lipjax/train/trainer.py): build, then load_pretrained.
    model = task.create_model(config, nnx.Rngs(0))
    task.load_pretrained(model, config)
    model.eval()
    video, mask, outs = ref.run_per_clip(reference, auto_avsr.LENGTHS, 32, seed=4)
    states = np.asarray(model(jnp.asarray(video), jnp.asarray(mask))["states"])
    diff = ref.max_abs_diff(states, [s for s, _ in outs], auto_avsr.LENGTHS)
    print(f"stage 1 seeded from a converted auto_avsr checkpoint: max abs difference {diff:.2e}")
    assert diff < auto_avsr.TOLERANCE

    workdir = tmp_path / "stage1"
    summary = train(config, str(workdir))
    assert summary["step"] == 2
    losses = [r["loss"] for r in read_metrics(str(workdir), "train")]
    assert len(losses) == 2 and all(np.isfinite(losses))
    loaded = restore_params(out)["visual"]
    trained = restore_params(str(workdir))["visual"]
    moved = jax.tree.map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                         loaded["encoder"]["embed"], trained["encoder"]["embed"])
    assert max(jax.tree.leaves(moved)) > 0  # it trained from the loaded weights
