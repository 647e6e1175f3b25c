"""Stage 2: a language-specific LMDecoder trained on audio-text data only.

Input: the unit sequence of the audio (`lipjax.units.targets.UnitTargets.lmdecoder_keys`: the
phone of each 25 Hz frame, the phone sequence, or the repeats-removed k-means units) → unit
embeddings (the memory) → memory encoder → decoder over the language's SentencePiece vocab.
Loss: (1 - w) · label-smoothed CE (0.1) + w · CTC, w = config.loss.ctc_weight (0.1–0.3 in the
paper).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from lipjax.models import factory
from lipjax.models.lmdecoder import LMDecoderModel
from lipjax.tasks import text
from lipjax.tasks.text import TextSettings

# wer / cer of the attention decoder, wer_ctc of the CTC head.
eval_metrics = text.eval_metrics


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LMDecoderModel:
    return factory.lmdecoder_model(config, rngs)


def settings(config: ml_collections.ConfigDict) -> TextSettings:
    """config.loss and config.decoding, resolved once for the jitted steps."""
    return TextSettings.from_config(config)


def unit_input(batch: dict[str, jax.Array], settings: TextSettings,
               key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(ids, mask) of the units the LMDecoder reads (`UnitTargets.lmdecoder_keys`).

    With a `key` (training) and config loss.frame_mix = p > 0, each example is given instead,
    with probability p, as the phone of each 25 Hz frame (`frame_phonemes`, silence included):
    the form in which stage 3's visual frames arrive. A decoder that only ever read phone
    sequences does not read frame-rate phones: exact frame phones of the it test clips gave
    WER 104 % against 75 % for their phone sequence (small, 400 steps)."""
    ids, mask = (batch[k] for k in settings.units.lmdecoder_keys)
    if key is None or settings.frame_mix <= 0 or "frame_phonemes" not in batch:
        return ids, mask
    frames, frame_mask = batch["frame_phonemes"], batch["frame_mask"]
    length = max(ids.shape[1], frames.shape[1])
    pad = lambda x: jnp.pad(x, ((0, 0), (0, length - x.shape[1])))
    pick = jax.random.bernoulli(key, settings.frame_mix, (ids.shape[0], 1))
    return (jnp.where(pick, pad(frames), pad(ids)),
            jnp.where(pick, pad(frame_mask), pad(mask)))


def encode(model: LMDecoderModel, batch: dict[str, jax.Array], settings: TextSettings,
           key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(states, mask) of the memory encoder over `unit_input`."""
    ids, mask = unit_input(batch, settings, key)
    return model.encode(ids, mask, batch["language"]), mask


def loss_fn(model: LMDecoderModel, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
            settings: TextSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The text loss (`text.text_loss`); `rngs` mixes in frame-rate inputs (`unit_input`) and
    drops decoder input tokens."""
    key = rngs() if rngs is not None and settings.frame_mix > 0 else None
    return text.text_loss(model, *encode(model, batch, settings, key), batch, settings, rngs)


def eval_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.greedy_step(encode, model, batch, settings)


def beam_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.beam_step(encode, model, batch, settings)
