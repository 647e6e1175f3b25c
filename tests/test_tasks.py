"""The three tasks on a random batch shaped like the input pipeline's, end to end: loss and
gradients, greedy eval_step, host metrics with a real SentencePiece model, and loading stage-1
and stage-2 weights from real Orbax checkpoints in the trainer's layout."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from lipjax import languages
from lipjax.models import factory
from lipjax.tasks import get_task, units_pretrain
from lipjax.tasks.common import WEIGHTS
from lipjax.units.tokenizer import train_tokenizer

B, T, HW, P, U, L = 2, 10, 24, 6, 7, 5
UNITS, VOCAB = 12, 64
TEXTS = ["hola mundo", "buenos dias amigo", "la casa es grande", "el perro come pan",
         "una mesa roja", "me gusta leer libros"] * 4


def _config(task, tmp_path, **model):
    model = factory.model_config("tiny", unit_vocab=UNITS, text_vocab=VOCAB,
                                 languages=("es",), **model)
    return ml_collections.ConfigDict({
        "task": task, "model": model, "train": {"dtype": "float32", "remat": False},
        "data": {"data_dir": str(tmp_path)}, "init": {}})


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    mask = lambda n, lens: np.arange(n)[None] < np.array(lens)[:, None]
    vm = mask(T, [T, T - 3])
    return {
        "video": rng.normal(size=(B, T, HW, HW)).astype(np.float32), "video_mask": vm,
        "units": rng.integers(0, UNITS, (B, T)).astype(np.int32), "frame_mask": vm,
        "dedup_units": rng.integers(0, UNITS, (B, U)).astype(np.int32),
        "dedup_units_mask": mask(U, [U, 4]),
        "phoneme_ids": rng.integers(1, UNITS, (B, P)).astype(np.int32),
        "phoneme_mask": mask(P, [P, 3]),
        "tokens": rng.integers(4, 30, (B, L)).astype(np.int32), "token_mask": mask(L, [L, 2]),
        "language": np.full((B,), languages.index("es"), np.int32),
        "id": np.array(["a", "b"], object), "text": np.array(TEXTS[:B], object),
    }


def _device(batch):
    return {k: jnp.asarray(v) for k, v in batch.items() if v.dtype != object}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    sp = train_tokenizer(TEXTS, languages.get("es").tokenizer_path(d), vocab_size=40)
    assert sp.get_piece_size() <= VOCAB
    return d


def _run(task_name, config):
    task = get_task(task_name)
    model = task.create_model(config, nnx.Rngs(0))
    model.train()
    host = _batch()
    batch = _device(host)
    grad_fn = nnx.value_and_grad(lambda m: task.loss_fn(m, batch, nnx.Rngs(1)), has_aux=True)
    (loss, metrics), grads = nnx.jit(grad_fn)(model)
    assert np.isfinite(float(loss)) and set(metrics) >= {"loss"}
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    model.eval()
    out = jax.tree.map(np.asarray, nnx.jit(task.eval_step)(model, batch))
    return model, task.eval_metrics([out], [host], config)


@pytest.mark.parametrize("unit_type", ["phoneme", "acoustic"])
def test_units_pretrain(unit_type, tmp_path):
    _, result = _run("units_pretrain", _config("units_pretrain", tmp_path, unit_type=unit_type))
    assert 0.0 <= result["lid_accuracy"] <= 1.0 and result["per"] >= 0.0


def test_lmdecoder_and_finetune_load_stages(data_dir, tmp_path):
    stage1, _ = _run("units_pretrain", _config("units_pretrain", data_dir))
    stage2, result = _run("lmdecoder", _config("lmdecoder", data_dir, unit_type="acoustic"))
    assert {"wer", "cer", "wer_ctc"} <= set(result) and result["wer"] >= 0.0
    for name, model in (("s1", stage1), ("s2", stage2)):
        with ocp.CheckpointManager(tmp_path / name / "checkpoints") as mngr:
            state = {"model": nnx.state(model, WEIGHTS).to_pure_dict(), "step": 3}
            mngr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
            mngr.wait_until_finished()

    config = _config("finetune", data_dir, unit_type="acoustic")
    config.init = {"encoder": str(tmp_path / "s1"), "lmdecoder": str(tmp_path / "s2")}
    finetune = get_task("finetune")
    model = finetune.create_model(config, nnx.Rngs(7))
    finetune.load_pretrained(model, config)
    got = nnx.state(model, WEIGHTS).to_pure_dict()
    want1 = nnx.state(stage1, WEIGHTS).to_pure_dict()
    want2 = nnx.state(stage2, WEIGHTS).to_pure_dict()
    for a, b in ((got["visual"], want1["visual"]), (got["decoders"], want2["decoders"])):
        jax.tree.map(np.testing.assert_array_equal, a, b)

    _, result = _run("finetune", config)
    assert {"wer", "cer"} <= set(result)

    # Ablation (c): the stage-2 LMDecoder's weights, no memory read.
    config_c = _config("finetune", data_dir, unit_type="acoustic", memory_addressing="none")
    config_c.init = dict(config.init)
    model_c = finetune.create_model(config_c, nnx.Rngs(8))
    finetune.load_pretrained(model_c, config_c)
    assert model_c.memory_read is None
    jax.tree.map(np.testing.assert_array_equal,
                 nnx.state(model_c, WEIGHTS).to_pure_dict()["decoders"], want2["decoders"])

    # Posterior addressing: the stage-1 unit head (loaded) weights the memory slots.
    config_p = _config("finetune", data_dir, unit_type="acoustic",
                       memory_addressing="posterior")
    config_p.init = {**config.init, "unit_head": str(tmp_path / "s1")}
    model_p = finetune.create_model(config_p, nnx.Rngs(9))
    finetune.load_pretrained(model_p, config_p)
    jax.tree.map(np.testing.assert_array_equal,
                 nnx.state(model_p, WEIGHTS).to_pure_dict()["unit_head"], want1["unit_head"])
    model_p.eval()
    batch = _device(_batch())
    weights = model_p.memory_attention(batch["video"], batch["video_mask"], "es")
    logits = model_p.unit_head(model_p.visual(batch["video"], batch["video_mask"]))
    assert weights.shape == (B, 1, T, UNITS)
    # Both sides are one softmax of the same float32 logits: equal up to float32 rounding.
    np.testing.assert_allclose(weights[:, 0], jax.nn.softmax(logits, -1), rtol=1e-6, atol=1e-7)
    _, result = _run("finetune", config_p)
    assert {"wer", "cer"} <= set(result)


def test_units_pretrain_on_frame_phonemes(tmp_path):
    """phoneme_targets='frames': frame CE on the phone of each frame; decoding merges repeats
    and drops silence (id 0) and padding, so frames [0 5 5 0 7 7 7 3 0 3] read as [5 7 3 3]."""
    config = _config("units_pretrain", tmp_path, unit_type="phoneme", phoneme_targets="frames")
    task = get_task("units_pretrain")
    model = task.create_model(config, nnx.Rngs(0))
    host = _batch()
    host["frame_phonemes"] = np.random.default_rng(1).integers(0, UNITS, (B, T)).astype(np.int32)
    loss, metrics = nnx.jit(lambda m, b: task.loss_fn(m, b, nnx.Rngs(1)))(model, _device(host))
    assert np.isfinite(float(loss)) and 0.0 <= float(metrics["unit_accuracy"]) <= 1.0
    model.eval()
    out = jax.tree.map(np.asarray, nnx.jit(task.eval_step)(model, _device(host)))
    assert out["units"].shape[0] == B and (out["units_len"] <= T).all()

    frames = jnp.asarray([[0, 5, 5, 0, 7, 7, 7, 3, 0, 3], [2, 2, 0, 4, 4, 9, 9, 1, 1, 1]])
    mask = jnp.asarray(host["video_mask"])  # the second clip's last 3 frames are padding
    units, lengths = units_pretrain.collapse_frames(frames, mask, drop_silence=True)
    assert np.asarray(units)[0, :int(lengths[0])].tolist() == [5, 7, 3, 3]
    assert np.asarray(units)[1, :int(lengths[1])].tolist() == [2, 4, 9]
    units, lengths = units_pretrain.collapse_frames(frames, mask, drop_silence=False)
    assert np.asarray(units)[0, :int(lengths[0])].tolist() == [0, 5, 0, 7, 3, 0, 3]

    del host["frame_phonemes"]
    with pytest.raises(ValueError, match="frame_phonemes"):
        task.loss_fn(model, _device(host), nnx.Rngs(1))
