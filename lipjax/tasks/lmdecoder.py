"""Stage 2: a language-specific LMDecoder trained on audio-text data only.

Input: the unit sequence of the audio (`lipjax.units.targets.UnitTargets.lmdecoder_keys`: the
phone of each 25 Hz frame, the phone sequence, or the repeats-removed k-means units) → unit
embeddings (the memory) → memory encoder → decoder over the language's SentencePiece vocab.
Loss: (1 - w) · label-smoothed CE (0.1) + w · CTC, w = config.model.ctc_weight (0.1–0.3 in the
paper).
"""

from __future__ import annotations

import jax
import ml_collections
import numpy as np
from flax import nnx

from lipjax import decoding, metrics
from lipjax.models import factory
from lipjax.models.lmdecoder import LMDecoderModel
from lipjax.tasks.common import decode_len, hparams, text_loss, texts
from lipjax.units.targets import UnitTargets


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LMDecoderModel:
    model = factory.lmdecoder_model(config, rngs)
    model.hp = hparams(config)
    return model


def unit_inputs(batch: dict[str, jax.Array], units: UnitTargets) -> tuple[jax.Array, jax.Array]:
    """(ids, mask) the LMDecoder reads (see UnitTargets.lmdecoder_keys)."""
    ids, mask = units.lmdecoder_keys
    return batch[ids], batch[mask]


def loss_fn(model: LMDecoderModel, batch: dict[str, jax.Array],
            rngs: nnx.Rngs) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Model dropout draws from the model's own streams; `rngs` (the trainer's) drops decoder
    input tokens (config model.token_dropout)."""
    units, mask = unit_inputs(batch, model.hp.units)
    states = model.encode(units, mask, batch["language"])
    return text_loss(model, states, mask, batch, model.hp, rngs)


def eval_step(model: LMDecoderModel, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Greedy attention decoding and greedy CTC decoding (model in eval mode)."""
    units, mask = unit_inputs(batch, model.hp.units)
    language = batch["language"]
    states = model.encode(units, mask, language)
    tokens, lengths = decoding.attention_greedy(model.decode, states, mask, language,
                                                decode_len(model.hp, units.shape[1]))
    ctc, ctc_len = decoding.ctc_greedy(model.ctc_logits(states, language), mask)
    return {"tokens": tokens, "tokens_len": lengths, "ctc_tokens": ctc, "ctc_tokens_len": ctc_len}


def beam_step(model: LMDecoderModel, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Joint CTC/attention beam search (config.model.beam_size, decode_ctc_weight,
    length_penalty) for final evaluations."""
    units, mask = unit_inputs(batch, model.hp.units)
    language = batch["language"]
    states = model.encode(units, mask, language)
    hp = model.hp
    tokens, lengths, _ = decoding.beam_search(
        model.decode, states, mask, language, model.ctc_logits(states, language),
        beam=hp.beam_size, ctc_weight=hp.decode_ctc_weight, length_penalty=hp.length_penalty,
        max_len=decode_len(hp, units.shape[1]))
    return {"tokens": tokens, "tokens_len": lengths}


def eval_metrics(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                 config: ml_collections.ConfigDict) -> dict[str, float]:
    """wer / cer of the attention decoder; ctc_wer of the CTC head (text from the language's
    SentencePiece model in config.data.data_dir, references from batch["text"])."""
    refs, hyps = texts(outputs, batches, config)
    result = {"wer": metrics.wer(refs, hyps), "cer": metrics.cer(refs, hyps)}
    if all("ctc_tokens" in o for o in outputs):
        _, ctc_hyps = texts(outputs, batches, config, key="ctc_tokens")
        result["wer_ctc"] = metrics.wer(refs, ctc_hyps)
    return result
