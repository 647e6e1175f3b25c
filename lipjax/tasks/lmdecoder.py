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
from lipjax.models import visemes as viseme_groups
from lipjax.models.lmdecoder import LMDecoderModel
from lipjax.tasks import text
from lipjax.tasks.text import TextSettings

# wer / cer of the attention decoder, wer_ctc of the CTC head.
eval_counts = text.eval_counts
eval_metrics = text.eval_metrics


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LMDecoderModel:
    return factory.lmdecoder_model(config, rngs)


def settings(config: ml_collections.ConfigDict) -> TextSettings:
    """config.loss and config.decoding, resolved once for the jitted steps."""
    return TextSettings.from_config(config)


def unit_input(batch: dict[str, jax.Array], settings: TextSettings,
               key: jax.Array | None = None,
               ) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """(ids, mask, as_visemes) of what the LMDecoder reads; `as_visemes` (B, 1) bool marks the
    rows whose ids are viseme groups (`LMDecoder.embed_groups`), or is None.

    By default the units of `UnitTargets.lmdecoder_keys`. In training (a `key`), each example is
    given instead, with probability config loss.frame_mix, as the phone of each 25 Hz frame
    (`frame_phonemes`, silence included: the form of stage 3's frames, which a decoder that
    only read phone sequences reads far worse; experiments/results/README.md), or with
    probability loss.viseme_mix as its viseme
    sequence (lipjax/models/visemes.py: what lips can show, the input of stage 3's
    model.memory_units="visemes"), with loss.viseme_noise of its groups replaced, dropped or
    added at random (`visemes.corrupt`: stage 1's errors). A form with probability 1 applies in
    evaluation too, without noise."""
    ids, mask = (batch[k] for k in settings.units.lmdecoder_keys)
    p_frames, p_visemes = settings.frame_mix, settings.viseme_mix
    if p_visemes > 0 and settings.units.kind != "phoneme":
        raise ValueError(f"config loss.viseme_mix={p_visemes}: viseme groups are groups of "
                         f"phonemes, but this run's units are {settings.units.kind!r} "
                         "(set loss.viseme_mix=0, or model.unit_type='phoneme')")
    if p_visemes >= 1.0:
        ids, mask = viseme_groups.viseme_sequence(ids, mask)
        return ids, mask, jnp.ones((ids.shape[0], 1), bool)
    if key is None or p_frames + p_visemes <= 0:
        return ids, mask, None
    key, noise_key = jax.random.split(key)
    draw = jax.random.uniform(key, (ids.shape[0], 1))
    as_frames = draw < p_frames
    as_visemes = (draw >= p_frames) & (draw < p_frames + p_visemes)
    if p_visemes > 0:
        groups, group_mask = viseme_groups.viseme_sequence(ids, mask)
        if settings.viseme_noise > 0:
            groups, group_mask = viseme_groups.corrupt(groups, group_mask,
                                                       settings.viseme_noise, noise_key)
        ids, mask = jnp.where(as_visemes, groups, ids), jnp.where(as_visemes, group_mask, mask)
    if p_frames > 0 and "frame_phonemes" in batch:
        frames, frame_mask = batch["frame_phonemes"], batch["frame_mask"]
        length = max(ids.shape[1], frames.shape[1])
        pad = lambda x: jnp.pad(x, ((0, 0), (0, length - x.shape[1])))
        ids = jnp.where(as_frames, pad(frames), pad(ids))
        mask = jnp.where(as_frames, pad(frame_mask), pad(mask))
    return ids, mask, as_visemes if p_visemes > 0 else None


def encode(model: LMDecoderModel, batch: dict[str, jax.Array], settings: TextSettings,
           key: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(states, mask) of the memory encoder over `unit_input`."""
    ids, mask, as_visemes = unit_input(batch, settings, key)
    return model.encode(ids, mask, batch["language"], as_visemes), mask


def loss_fn(model: LMDecoderModel, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
            settings: TextSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The text loss (`text.text_loss`); `rngs` mixes in frame-rate inputs (`unit_input`) and
    drops decoder input tokens."""
    mixing = settings.frame_mix + settings.viseme_mix > 0
    key = rngs() if rngs is not None and mixing else None
    return text.text_loss(model, *encode(model, batch, settings, key), batch, settings, rngs)


def eval_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.greedy_step(encode, model, batch, settings)


def beam_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.beam_step(encode, model, batch, settings)
