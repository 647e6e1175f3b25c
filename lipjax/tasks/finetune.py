"""Stage 3: combine the stage-1 visual encoder with the target language's stage-2 LMDecoder and
fine-tune on that language's few video-text clips.

config.model.memory_addressing picks how visual states read the memory ("attention",
"posterior") or that they read none ("none"); with none and no `init` checkpoints this is
baseline (a) (VSR from scratch), with only `init.encoder` baseline (b) (shared-unit encoder +
plain decoder), with `init.lmdecoder` too ablation (c). Checkpoints (config.init, see
tasks/common.py):
  - init.encoder: stage-1 workdir → model.visual (frontend + visual encoder)
  - init.unit_head: stage-1 workdir → model.unit_head (posterior addressing)
  - init.lid: stage-1 workdir → model.lid (the language-ID head; readers of several languages)
  - init.lmdecoder: stage-2 workdir (one for all languages) or {code: workdir} →
    model.decoders.lmdecoders[code]
Batches may mix languages (each example goes to its language's LMDecoder; see lmdecoder.py).
A reader of several languages (config model.languages) has a language-ID head: trained with
loss.lid_weight, it picks the decoder at inference (tasks/routing.py), and evaluation scores
both the labelled language's decoder (wer) and the routed one (wer_routed, lid_accuracy).
"""

from __future__ import annotations

import logging

import jax
import ml_collections
from flax import nnx

from lipjax.data import rehearsal
from lipjax.models import factory
from lipjax.models.lipreader import LipReader
from lipjax.models.lmdecoder import encode_units, language_positions
from lipjax.tasks import lmdecoder, routing, text
from lipjax.tasks.common import load_subtrees
from lipjax.tasks.text import TextSettings
from lipjax.tasks.units_pretrain import lid_loss

log = logging.getLogger(__name__)  # lipjax.*: shown on process 0 by lipjax.train

# wer / cer of the attention decoder, wer_ctc of the CTC head.
eval_counts = text.eval_counts
eval_metrics = text.eval_metrics


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LipReader:
    return factory.lipreader(config, rngs)


def settings(config: ml_collections.ConfigDict) -> TextSettings:
    """config.loss and config.decoding, resolved once for the jitted steps."""
    return TextSettings.from_config(config)


def encode(model: LipReader, batch: dict[str, jax.Array],
           settings: TextSettings) -> tuple[jax.Array, jax.Array]:
    """(states, mask) of the lip reader's encoder (visual states after the memory read; with
    viseme memory units, one state per run of frames, see LipReader.encode)."""
    del settings  # the video is the input whatever the units
    return model.encode(batch["video"], batch["video_mask"], batch["language"])


def loss_fn(model: LipReader, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
            settings: TextSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The text loss (`text.text_loss`); `rngs` drops decoder input tokens. A reader of
    several languages adds loss.lid_weight × its language-ID head's cross-entropy over its
    languages, so the head that will pick the decoder learns these clips too. A batch that
    carries stage-2 audio-text rows (lipjax/data/rehearsal.py) adds rehearsal.weight × stage
    2's loss on them, so the LMDecoders keep the language they learnt there."""
    batch, side = rehearsal.split_batch(batch)
    video, mask = batch["video"], batch["video_mask"]
    states = model.visual(video, mask)
    loss, out = text.text_loss(model, *model.encode_states(states, mask, batch["language"]),
                               batch, settings, rngs)
    if model.lid is not None and settings.lid_weight > 0:
        target = language_positions(batch["language"], model.decoders.codes)
        lid, accuracy = lid_loss(model.language_logits(states, mask), target)
        loss = loss + settings.lid_weight * lid
        out.update(loss=loss, lid_loss=lid, lid_accuracy=accuracy)
    if side and settings.rehearsal is not None:
        stage2, stage2_out = rehearsal_loss(model, side, rngs, settings.rehearsal)
        loss = loss + settings.rehearsal_weight * stage2
        out.update(loss=loss, rehearsal_loss=stage2,
                   rehearsal_token_accuracy=stage2_out["token_accuracy"])
    return loss, out


def rehearsal_loss(model: LipReader, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
                   settings: TextSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Stage 2's text loss (tasks/lmdecoder.py) of the reader's LMDecoders on audio-text rows:
    their unit sequences (or viseme sequences, loss.viseme_mix) through the memory."""
    mixing = settings.frame_mix + settings.viseme_mix > 0
    key = rngs() if rngs is not None and mixing else None
    ids, mask, as_visemes = lmdecoder.unit_input(batch, settings, key)
    states = encode_units(model.decoders, ids, mask, batch["language"], as_visemes)
    return text.text_loss(model, states, mask, batch, settings, rngs)


def eval_step(model: LipReader, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    """Greedy decoding by the clip's own language's decoder; a reader of several languages
    also decodes by the language its language-ID head picks ("tokens_routed")."""
    states, mask = model.visual(batch["video"], batch["video_mask"]), batch["video_mask"]
    decode = lambda language: text.greedy_decode(
        model, *model.encode_states(states, mask, language), language, settings)
    out = decode(batch["language"])
    if model.lid is not None:
        chosen = routing.hard(model, states, mask)
        routed = decode(chosen)
        out.update(tokens_routed=routed["tokens"], tokens_routed_len=routed["tokens_len"],
                   tokens_routed_language=chosen)
    return out


def beam_step(model: LipReader, batch: dict[str, jax.Array],
              settings: TextSettings) -> dict[str, jax.Array]:
    """The beam search by the clip's own language's decoder; a reader of several languages
    adds the hard and the soft routing's (tasks/routing.py)."""
    states, mask = model.visual(batch["video"], batch["video_mask"]), batch["video_mask"]
    decode = lambda language: text.beam_decode(
        model, *model.encode_states(states, mask, language), language, settings)
    tokens, lengths, _ = decode(batch["language"])
    out = {"tokens": tokens, "tokens_len": lengths}
    if model.lid is not None:
        chosen = routing.hard(model, states, mask)
        tokens, lengths, _ = decode(chosen)
        out.update(tokens_routed=tokens, tokens_routed_len=lengths,
                   tokens_routed_language=chosen)
        tokens, lengths, chosen = routing.soft(decode, model, states, mask,
                                               settings.route_lid_weight)
        out.update(tokens_soft=tokens, tokens_soft_len=lengths, tokens_soft_language=chosen)
    return out


def check_unit_type(config: ml_collections.ConfigDict, path: str, stage: str) -> None:
    """Stops when the run at `path` (its saved config.json) used other units than `config`:
    stage-1 states and the LMDecoder memory must speak the same units."""
    import json
    import os

    saved = os.path.join(path, "config.json")
    if not os.path.exists(saved):
        return  # a bare checkpoint directory: nothing to compare
    with open(saved) as f:
        theirs = json.load(f).get("model", {}).get("unit_type")
    ours = factory.get(config, "unit_type")
    if theirs and theirs != ours:
        raise ValueError(f"{stage} run {path} was trained on {theirs!r} units but this run uses "
                         f"{ours!r} (config model.unit_type): pass units={theirs} in the config "
                         f"argument, or retrain the {stage} run with {ours!r} units.")


def load_pretrained(model: LipReader, config: ml_collections.ConfigDict) -> None:
    """Copies stage-1 (visual encoder, unit head) and stage-2 (per-language LMDecoder)
    weights."""
    init = config.get("init", None) or {}
    encoder_path = init.get("encoder", None)
    if encoder_path:
        check_unit_type(config, encoder_path, "stage-1")
        n = load_subtrees(model, encoder_path, [(("visual",), ("visual",))])
        log.info("Loaded %d arrays (visual encoder) from %s", n, encoder_path)
    head_path = init.get("unit_head", None)
    if head_path:
        if model.unit_head is None:
            raise ValueError("config init.unit_head is set but the model has no unit head "
                             "(config model.memory_addressing must be 'posterior')")
        # Widened when language packages added phones since stage 1 (models/grown_inventory).
        from lipjax.models.grown_inventory import load_unit_head
        from lipjax.tasks.common import restore_params

        n = load_unit_head(model.unit_head, restore_params(head_path)["unit_head"],
                           f"{head_path}: model/unit_head")
        log.info("Loaded %d arrays (unit head) from %s", n, head_path)
    lid_path = init.get("lid", None)
    if lid_path:
        if model.lid is None:
            raise ValueError("config init.lid is set but the model has no language-ID head "
                             "(it has one when config model.languages names several)")
        n = load_subtrees(model, lid_path, [(("lid",), ("lid",))])
        log.info("Loaded %d arrays (language-ID head) from %s", n, lid_path)
    lm = init.get("lmdecoder", None)
    if lm:
        paths = {c: lm for c in model.decoders.codes} if isinstance(lm, str) else dict(lm)
        for code, path in paths.items():
            if code not in model.decoders.codes:
                raise ValueError(f"config init.lmdecoder: language {code!r} is not in "
                                 f"config.model.languages {model.decoders.codes}")
            check_unit_type(config, path, "stage-2")
            sub = ("decoders", "lmdecoders", code)
            n = load_subtrees(model, path, [(sub, sub)])
            log.info("Loaded %d arrays (LMDecoder %s) from %s", n, code, path)
