"""Stage 2: a language-specific LMDecoder trained on audio-text data only.

Input: the unit sequence of the audio (`lipjax.units.targets.UnitTargets.lmdecoder_keys`: the
phone of each 25 Hz frame, the phone sequence, or the repeats-removed k-means units) → unit
embeddings (the memory) → memory encoder → decoder over the language's SentencePiece vocab.
Loss: (1 - w) · label-smoothed CE (0.1) + w · CTC, w = config.loss.ctc_weight (0.1–0.3 in the
paper).
"""

from __future__ import annotations

import jax
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


def encode(model: LMDecoderModel, batch: dict[str, jax.Array],
           settings: TextSettings) -> tuple[jax.Array, jax.Array]:
    """(states, mask) of the memory encoder over the units the LMDecoder reads
    (`UnitTargets.lmdecoder_keys`)."""
    ids, mask = (batch[k] for k in settings.units.lmdecoder_keys)
    return model.encode(ids, mask, batch["language"]), mask


def loss_fn(model: LMDecoderModel, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
            settings: TextSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The text loss (`text.text_loss`); `rngs` drops decoder input tokens."""
    return text.text_loss(model, *encode(model, batch, settings), batch, settings, rngs)


def eval_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.greedy_step(encode, model, batch, settings)


def beam_step(model: LMDecoderModel, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    return text.beam_step(encode, model, batch, settings)
