"""What the two text tasks (stage 2 `lmdecoder`, stage 3 `finetune`) share once each has
encoded its input: their settings, the text loss, greedy and beam decoding, and WER/CER.

The tasks differ only in what they encode (the audio's units, or the lip video), so each
supplies an `encode(model, batch, settings) -> (states, mask)` and calls the functions here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import decoding, languages, losses, metrics
from lipjax.models import factory
from lipjax.models.decoder import shift_targets
from lipjax.schema import PAD, UNK
from lipjax.tasks import routing
from lipjax.tasks.common import ids_to_text, valid_rows
from lipjax.units.targets import UnitTargets

Encode = Callable[[Any, dict[str, jax.Array], "TextSettings"], tuple[jax.Array, jax.Array]]


@dataclasses.dataclass(frozen=True)
class TextSettings:
    """Loss (config.loss) and decoding (config.decoding) settings of a text task: frozen and
    hashable, so jitted steps take them as static arguments rather than reading the model."""

    units: UnitTargets
    ctc_weight: float
    label_smoothing: float
    token_dropout: float
    beam_size: int
    decode_ctc_weight: float
    length_penalty: float
    max_decode_len: int
    frame_mix: float = 0.0
    viseme_mix: float = 0.0
    viseme_noise: float = 0.0
    lid_weight: float = 0.0  # loss.lid_weight: a multilingual reader's language-ID loss
    route: str = "hard"  # decoding.route (tasks/routing.py)
    route_lid_weight: float = 1.0  # decoding.lid_weight: soft routing's log P(language) weight
    # Stage 3's rehearsal of stage 2 (lipjax/data/rehearsal.py): the audio-text loss's weight
    # and its settings (config.rehearsal.loss, read as stage 2 reads its own).
    rehearsal_weight: float = 0.0
    rehearsal: TextSettings | None = None

    @classmethod
    def from_config(cls, config: ml_collections.ConfigDict) -> TextSettings:
        loss, dec = _block(config, "loss"), _block(config, "decoding")
        rehearsal, weight = None, 0.0
        block = config.get("rehearsal", None)
        if block is not None and float(block.get("weight", 0.0)) > 0:
            stage2 = ml_collections.ConfigDict(config.to_dict())
            del stage2["rehearsal"]
            stage2.loss = block.loss
            stage2.model.phoneme_targets = block.phoneme_targets
            rehearsal, weight = cls.from_config(stage2), float(block.weight)
        return cls(rehearsal_weight=weight, rehearsal=rehearsal,
                   units=factory.unit_targets(config),
                   ctc_weight=float(loss.ctc_weight),
                   label_smoothing=float(loss.label_smoothing),
                   token_dropout=float(loss.token_dropout),
                   beam_size=int(dec.beam_size),
                   decode_ctc_weight=float(dec.decode_ctc_weight),
                   length_penalty=float(dec.length_penalty),
                   max_decode_len=int(dec.max_decode_len),
                   frame_mix=float(loss.get("frame_mix", 0.0)),
                   viseme_mix=float(loss.get("viseme_mix", 0.0)),
                   viseme_noise=float(loss.get("viseme_noise", 0.0)),
                   lid_weight=float(loss.get("lid_weight", 0.0)),
                   route=routing.check_route(str(dec.get("route", "hard"))),
                   route_lid_weight=float(dec.get("lid_weight", 1.0)))

    def decode_len(self, frames: int) -> int:
        """Longest hypothesis: config decoding.max_decode_len, 0 = as many as input frames."""
        return self.max_decode_len or frames


def _block(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    if name not in config:
        raise KeyError(f"config.{name}: missing; the stage config (configs/{config.get('task')}"
                       f".py) writes this block")
    return config[name]


def drop_tokens(inputs: jax.Array, rate: float, key: jax.Array) -> jax.Array:
    """Decoder inputs with each token after BOS replaced by UNK with probability `rate`.

    An autoregressive decoder trained on few sentences learns to recite them from their first
    words (it fits its training sentences while validation stays poor): hiding part of its own
    history makes it read the encoder states instead."""
    drop = jax.random.bernoulli(key, rate, inputs.shape)
    drop = drop.at[:, 0].set(False)
    return jnp.where(drop & (inputs != PAD), UNK, inputs)


def text_loss(model: Any, states: jax.Array, mask: jax.Array, batch: dict[str, jax.Array],
              settings: TextSettings, rngs: nnx.Rngs | None = None
              ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """(1 - w) · label-smoothed CE (decoder) + w · CTC (text head), w = loss.ctc_weight; with
    `rngs` (the trainer's), decoder inputs are dropped at loss.token_dropout (`drop_tokens`).
    Model dropout draws from the model's own streams."""
    language = batch["language"]
    inputs, targets, tmask = shift_targets(batch["tokens"], batch["token_mask"])
    if rngs is not None and settings.token_dropout > 0:
        inputs = drop_tokens(inputs, settings.token_dropout, rngs())
    logits = model.decoders.decode(inputs, states, mask, language)
    ce = losses.label_smoothed_ce(logits, targets, tmask, settings.label_smoothing,
                                  model.decoders.vocab_mask(language))
    out = {"ce": ce, "token_accuracy": losses.accuracy(logits, targets, tmask)}
    loss = ce
    if settings.ctc_weight > 0:
        ctc = losses.ctc(model.decoders.ctc_logits(states, language), mask, batch["tokens"],
                         batch["token_mask"], blank_id=PAD)
        loss = (1 - settings.ctc_weight) * ce + settings.ctc_weight * ctc
        out["ctc"] = ctc
        out["ctc_left_out"] = losses.ctc_left_out(mask, batch["tokens"], batch["token_mask"])
    return loss, {"loss": loss, **out}


def greedy_step(encode: Encode, model: Any, batch: dict[str, jax.Array],
                settings: TextSettings) -> dict[str, jax.Array]:
    """Greedy attention decoding and greedy CTC decoding (model in eval mode)."""
    states, mask = encode(model, batch, settings)
    return greedy_decode(model, states, mask, batch["language"], settings)


def greedy_decode(model: Any, states: jax.Array, mask: jax.Array, language: jax.Array,
                  settings: TextSettings) -> dict[str, jax.Array]:
    """`greedy_step` on encoded states, read by `language`'s decoders (B,)."""
    # model.decoders decodes step by step from a key/value cache (decoding.StepDecoder).
    tokens, lengths = decoding.attention_greedy(model.decoders, states, mask, language,
                                                settings.decode_len(mask.shape[1]))
    ctc, ctc_len = decoding.ctc_greedy(model.decoders.ctc_logits(states, language), mask)
    return {"tokens": tokens, "tokens_len": lengths, "ctc_tokens": ctc, "ctc_tokens_len": ctc_len}


def beam_step(encode: Encode, model: Any, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    """Joint CTC/attention beam search (config decoding.beam_size, decode_ctc_weight,
    length_penalty) for final evaluations."""
    states, mask = encode(model, batch, settings)
    tokens, lengths, _ = beam_decode(model, states, mask, batch["language"], settings)
    return {"tokens": tokens, "tokens_len": lengths}


def beam_decode(model: Any, states: jax.Array, mask: jax.Array, language: jax.Array,
                settings: TextSettings) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`beam_step` on encoded states: (tokens, lengths, the best hypothesis' score (B,))."""
    decoders = model.decoders
    return decoding.beam_search(
        decoders, states, mask, language, decoders.ctc_logits(states, language),
        beam=settings.beam_size, ctc_weight=settings.decode_ctc_weight,
        length_penalty=settings.length_penalty, max_len=settings.decode_len(mask.shape[1]))


# Routed hypotheses (tasks/routing.py) a multilingual reader's steps add, by output key: the
# suffix of their metric names. Each comes with "<key>_language", the language that wrote it.
ROUTED = {"tokens_routed": "_routed", "tokens_soft": "_soft"}


def eval_counts(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                config: ml_collections.ConfigDict) -> dict[str, metrics.Counts]:
    """wer / cer of the attention decoder; wer_ctc of the CTC head (text from the language's
    SentencePiece model in config.data.data_dir, references from batch["text"]), as their
    sums over this host's valid rows, so hosts can add them. A multilingual reader's outputs
    add wer / cer of each routing (e.g. wer_routed: the language-ID head chose the decoder)
    and lid_accuracy (lid_accuracy_soft) of the language it chose."""
    refs, hyps = texts(outputs, batches, config)
    result = {"wer": metrics.wer_counts(refs, hyps), "cer": metrics.cer_counts(refs, hyps)}
    if outputs and all("ctc_tokens" in o for o in outputs):
        _, ctc_hyps = texts(outputs, batches, config, key="ctc_tokens")
        result["wer_ctc"] = metrics.wer_counts(refs, ctc_hyps)
    for key, suffix in ROUTED.items():
        if outputs and all(key in o for o in outputs):
            _, routed = texts(outputs, batches, config, key=key)
            result["wer" + suffix] = metrics.wer_counts(refs, routed)
            result["cer" + suffix] = metrics.cer_counts(refs, routed)
            labels, chosen = chosen_languages(outputs, batches, key)
            result["lid_accuracy" + suffix.replace("_routed", "")] = metrics.lid_counts(
                labels, chosen)
    return result


def chosen_languages(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                     key: str = "tokens_routed") -> tuple[np.ndarray, np.ndarray]:
    """(labelled, chosen) registered-language indices of every valid clip, for the routed
    hypotheses `key` (what a confusion matrix is drawn from)."""
    labels, chosen = [], []
    for out, batch in zip(outputs, batches, strict=True):
        valid = valid_rows(batch)
        labels.append(np.asarray(batch["language"])[valid])
        chosen.append(np.asarray(out[f"{key}_language"])[valid])
    return np.concatenate(labels), np.concatenate(chosen)


def eval_metrics(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                 config: ml_collections.ConfigDict) -> dict[str, float]:
    """`eval_counts` as rates."""
    return metrics.rates(eval_counts(outputs, batches, config))


# ---------------------------------------------------------------------------------------------
# Host side: references and hypotheses.
# ---------------------------------------------------------------------------------------------


def texts(outputs: list[dict[str, np.ndarray]], batches: list[dict], config: Any,
          key: str = "tokens") -> tuple[list[str], list[str]]:
    """(references, hypotheses) for every valid example of the evaluated batches; the
    hypotheses are `outputs[key]`, written in `outputs[key + "_language"]` where it exists
    (routed decoding), else in the clip's labelled language."""
    codes = languages.codes()
    refs, hyps = [], []
    for out, batch in zip(outputs, batches, strict=True):
        for i, text in enumerate(np.asarray(batch["text"])):
            if not valid_rows(batch)[i]:
                continue
            lang = codes[int(np.asarray(batch["language"])[i])]
            refs.append(languages.get(lang).normalize(str(text)))
            # A routed hypothesis is in the vocabulary of the language that wrote it.
            wrote = codes[int(np.asarray(out[f"{key}_language"])[i])] if (
                f"{key}_language" in out) else lang
            hyps.append(ids_to_text(out[key][i], int(out[f"{key}_len"][i]), wrote,
                                    str(config.data.data_dir)))
    return refs, hyps
