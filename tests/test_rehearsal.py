"""Stage 3's rehearsal of stage 2: the loss adds stage 2's loss of the same LMDecoders on the
audio-text rows, and the paired loader resumes both streams where they stopped. The trainer
runs it end to end, checkpoint included, in tests/test_demo.py (slow)."""

import json

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from configs import finetune as finetune_cfg
from lipjax import languages
from lipjax.data import rehearsal
from lipjax.models import factory
from lipjax.models.lmdecoder import LMDecoderModel
from lipjax.tasks import get_task
from tests import fixtures_builder as fb

B, T, HW, L, P, UNITS = 2, 10, 24, 5, 7, 12


def _config(weight: float) -> ml_collections.ConfigDict:
    model = factory.model_config("tiny", unit_vocab=UNITS, unit_type="phoneme",
                                 languages=("es",), text_vocab=40)
    config = ml_collections.ConfigDict({
        "task": "finetune", "model": model, "train": {"dtype": "float32", "remat": False},
        "loss": {"ctc_weight": 0.3, "label_smoothing": 0.1, "token_dropout": 0.0},
        "decoding": {"beam_size": 3, "decode_ctc_weight": 0.3, "length_penalty": 0.0,
                     "max_decode_len": 6},
        "data": {"data_dir": "unused"}, "init": {}})
    config.rehearsal = {"weight": weight, "phoneme_targets": "sequence",
                        "loss": {"ctc_weight": 0.3, "label_smoothing": 0.1,
                                 "token_dropout": 0.0, "viseme_mix": 0.0}}
    return config


def _batches(seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    mask = lambda n, lens: np.arange(n)[None] < np.array(lens)[:, None]
    es = np.full((B,), languages.index("es"), np.int32)
    video = {"video": rng.normal(size=(B, T, HW, HW)).astype(np.float32),
             "video_mask": mask(T, [T, T - 3]),
             "tokens": rng.integers(4, 30, (B, L)).astype(np.int32),
             "token_mask": mask(L, [L, 2]), "language": es}
    audio = {"phoneme_ids": rng.integers(1, UNITS, (B, P)).astype(np.int32),
             "phoneme_mask": mask(P, [P, 4]),
             "tokens": rng.integers(4, 30, (B, L)).astype(np.int32),
             "token_mask": mask(L, [3, L]), "language": es}
    return ({k: jnp.asarray(v) for k, v in video.items()},
            {k: jnp.asarray(v) for k, v in audio.items()})


def test_loss_adds_stage2_loss_of_the_same_decoders():
    weight = 1.5
    finetune, stage2 = get_task("finetune"), get_task("lmdecoder")
    config = _config(weight)
    settings = finetune.settings(config)
    assert settings.rehearsal_weight == weight and not settings.rehearsal.units.frames
    model = finetune.create_model(config, nnx.Rngs(0))
    model.eval()  # no dropout: the three losses are deterministic
    video, audio = _batches()
    paired = {**video, **{rehearsal.PREFIX + k: v for k, v in audio.items()}}

    @nnx.jit
    def losses(model):
        both, out = finetune.loss_fn(model, paired, None, settings)
        alone, _ = finetune.loss_fn(model, video, None, settings)
        # Stage 2's own task on an LMDecoder model made of the reader's decoders.
        reference, _ = stage2.loss_fn(LMDecoderModel(model.decoders), audio, None,
                                      settings.rehearsal)
        # The audio rows train the LMDecoder's unit embeddings (the memory) through stage 2's
        # input path.
        grads = nnx.grad(lambda m: finetune.rehearsal_loss(m, audio, None,
                                                           settings.rehearsal)[0])(model)
        memory = grads.decoders.lmdecoders["es"].units.embedding.value
        return both, out["rehearsal_loss"], alone, reference, jnp.abs(memory).max()

    both, side, alone, reference, memory_grad = map(float, losses(model))
    assert side == pytest.approx(reference, rel=1e-5)
    assert both == pytest.approx(alone + weight * reference, rel=1e-5)
    assert memory_grad > 0


def test_rehearsal_is_off_by_default_and_configured_from_stage2():
    config = finetune_cfg.get_config("tiny,lang=it+pt,init=posterior")
    assert not rehearsal.enabled(config)
    config = finetune_cfg.get_config("tiny,lang=it+pt,init=posterior,rehearsal=0.5")
    assert rehearsal.enabled(config)
    assert config.rehearsal.data.sources == ("synthetic_lips/it_audio", "synthetic_lips/pt_audio")
    assert config.rehearsal.data.units == config.model.unit_type
    settings = get_task("finetune").settings(config)
    assert settings.rehearsal.units.sequence_keys == ("phoneme_ids", "phoneme_mask")


def _loader_config(data_dir: str) -> ml_collections.ConfigDict:
    data = lambda sources, batch: ml_collections.ConfigDict({
        "builder": fb.BUILDER, "data_dir": data_dir, "sources": sources, "batch_size": batch,
        "frame_buckets": (32, 64, 96), "max_frames": 96, "token_bucket": 8, "crop": 88,
        "hflip": False, "tokenizer_vocab": 1000, "num_workers": 0, "languages": ("en", "es")})
    config = ml_collections.ConfigDict({"seed": 3, "data": data([("en_video", 1.0)], 2)})
    config.rehearsal = {"weight": 1.0, "data": data([("en_audio", 1.0), ("es_audio", 1.0)], 4)}
    config.rehearsal.data.units = "phoneme"
    return config


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(np.asarray(a[k]), np.asarray(b[k])) for k in a)


def test_paired_loader_resumes_both_streams():
    config = _loader_config(fb.tiny_data_dir())
    loader = rehearsal.train_loader(config, mesh=None)
    first = next(loader)
    main, side = rehearsal.split_batch(first)
    assert "video" in main and "video" not in side
    assert side["tokens"].shape[0] == 4 and main["video"].shape[0] == 2
    next(loader)
    # Saved as the checkpoint handler saves it: one json state per data shard.
    saved = {s: json.loads(json.dumps(st)) for s, st in loader.shard_states().items()}
    expected = [next(loader) for _ in range(3)]

    again = rehearsal.train_loader(config, mesh=None)
    again.set_shard_states(saved)
    for want in expected:
        assert _same(next(again), want)
    # A plain loader's state (a run started without rehearsal) is refused by name.
    plain = {s: st["main"] for s, st in saved.items()}
    with pytest.raises(ValueError, match="no rehearsal stream"):
        rehearsal.train_loader(config, mesh=None).set_shard_states(plain)
