"""Stage 1: general speech knowledge from lip videos of the high-resource languages.

frontend + visual encoder + shared-unit head + language-ID head (SBL-style auxiliary loss,
weight config.loss.lid_weight). The unit head learns, by config.model.unit_type /
phoneme_targets:
- acoustic: frame CE on the 25 Hz k-means `units` of the audio track;
- phoneme, sequence: CTC on the clip's `phoneme_ids` (needs no alignment; slow to start);
- phoneme, frames: frame CE on `frame_phonemes`, the phone sounding at each frame, where a
  corpus has it (synthetic_lips: the synthesizer's own timings; a real corpus would need a forced
  alignment). A dense target like the acoustic units', so it learns in far fewer steps.
"""

from __future__ import annotations

import dataclasses
import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx

from lipjax import decoding, losses, metrics
from lipjax.models import factory
from lipjax.models.lipreader import VisualUnitModel
from lipjax.tasks.common import load_subtrees, valid_rows
from lipjax.units.targets import UnitTargets

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class UnitSettings:
    """What the stage-1 loss and decoding need: the units and config loss.lid_weight (frozen
    and hashable: a static argument of the jitted steps)."""

    units: UnitTargets
    lid_weight: float


def settings(config: ml_collections.ConfigDict) -> UnitSettings:
    return UnitSettings(factory.unit_targets(config), factory.lid_weight(config))


def create_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> VisualUnitModel:
    return factory.visual_unit_model(config, rngs)


def load_pretrained(model: VisualUnitModel, config: ml_collections.ConfigDict) -> None:
    """config init.encoder (configs/units_pretrain.py `init_from`): the front end + encoder of a
    converted pretrained checkpoint (lipjax/io/convert.py) or of an earlier stage-1 run; the
    unit and language-ID heads stay as initialised."""
    path = (config.get("init", None) or {}).get("encoder", "")
    if path:
        n = load_subtrees(model, path, [(("visual",), ("visual",))])
        log.info("Loaded %d arrays (front end + encoder) from %s", n, path)


def loss_fn(model: VisualUnitModel, batch: dict[str, jax.Array], rngs: nnx.Rngs | None,
            settings: UnitSettings) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Dropout draws from the streams the model was built with; `rngs` (the trainer's, which
    the text tasks use for token dropout) is unused here."""
    del rngs
    mask = batch["video_mask"]
    out = model(batch["video"], mask)
    if settings.units.frames:
        targets = batch[frame_targets(settings.units, batch)]
        unit_loss = losses.frame_ce(out["unit_logits"], targets, mask)
        metrics_ = {"unit_accuracy": losses.accuracy(out["unit_logits"], targets, mask)}
    else:
        unit_loss = losses.ctc(out["unit_logits"], mask, batch["phoneme_ids"],
                               batch["phoneme_mask"], blank_id=0)
        # Clips too short for their phone sequence cannot be aligned: counted, not hidden.
        metrics_ = {"ctc_left_out": losses.ctc_left_out(mask, batch["phoneme_ids"],
                                                        batch["phoneme_mask"])}
    loss = unit_loss
    if "lid_logits" in out:
        lid, accuracy = lid_loss(out["lid_logits"], batch["language"])
        loss = loss + settings.lid_weight * lid
        metrics_["lid_loss"] = lid
        metrics_["lid_accuracy"] = accuracy
    return loss, {"loss": loss, "unit_loss": unit_loss, **metrics_}


def lid_loss(logits: jax.Array, language: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(cross-entropy, accuracy) of the language-ID head over the clips with a language;
    unlabelled clips (language -1, `languages.UNLABELLED`) are left out of both."""
    known = (language >= 0).astype(jnp.float32)
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.maximum(language, 0))
    hits = (jnp.argmax(logits, -1) == language).astype(jnp.float32)
    count = jnp.maximum(known.sum(), 1.0)
    return (ce * known).sum() / count, (hits * known).sum() / count


def frame_targets(units: UnitTargets, batch: dict) -> str:
    """The batch key of the per-frame unit targets (acoustic units or frame phonemes)."""
    if units.frame_key not in batch:
        raise ValueError("config model.phoneme_targets='frames' needs per-frame phone labels "
                         "(the feature `frame_phonemes`, which synthetic_lips video configs "
                         "have); this corpus has none: use phoneme_targets='sequence' (CTC) or "
                         "unit_type='acoustic'.")
    return units.frame_key


def collapse_frames(best: jax.Array, mask: jax.Array, *, drop_silence: bool
                    ) -> tuple[jax.Array, jax.Array]:
    """Per-frame ids (B, T) → unit sequences (compacted to the left) and their lengths: runs of
    one id count once, padding frames are dropped, and so is silence (id 0) for phones."""
    prev = jnp.concatenate([jnp.full_like(best[:, :1], -1), best[:, :-1]], axis=1)
    keep = (best != prev) & mask
    if drop_silence:
        keep &= best != 0
    return decoding.compact(best, keep)


def eval_step(model: VisualUnitModel, batch: dict[str, jax.Array],
              settings: UnitSettings) -> dict[str, jax.Array]:
    """Greedy unit predictions (CTC best path, or per-frame argmax with repeats removed) and
    the LID prediction. Call with the model in eval mode."""
    mask = batch["video_mask"]
    out = model(batch["video"], mask)
    if settings.units.frames:
        units, lengths = collapse_frames(jnp.argmax(out["unit_logits"], -1), mask,
                                         drop_silence=settings.units.drop_silence)
    else:
        units, lengths = decoding.ctc_greedy(out["unit_logits"], mask, blank_id=0)
    res = {"units": units, "units_len": lengths}
    if "lid_logits" in out:
        res["lid"] = jnp.argmax(out["lid_logits"], -1)
        # For fusing the head with other evidence (experiments/lid_ceiling.py).
        res["lid_log_probs"] = jax.nn.log_softmax(out["lid_logits"].astype(jnp.float32), -1)
    return res


def _refs(batch: dict, units: UnitTargets) -> list[list[int]]:
    ids_key, mask_key = units.sequence_keys
    ids, mask = np.asarray(batch[ids_key]), np.asarray(batch[mask_key])
    return [[int(u) for u in row[m]] for row, m in zip(ids, mask, strict=True)]


def eval_counts(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                config: ml_collections.ConfigDict) -> dict[str, metrics.Counts]:
    """per: unit (phone) error rate by edit distance (word boundaries excluded for phonemes);
    ver: viseme error rate (phonemes only, see metrics.viseme_error_rate); lid_accuracy. As
    their sums over this host's valid rows (padding rows excluded), so hosts can add them."""
    units = factory.unit_targets(config)
    refs, hyps, labels, preds = [], [], [], []
    for out, batch in zip(outputs, batches, strict=True):
        valid = valid_rows(batch)
        for ref, row, n, ok in zip(_refs(batch, units), np.asarray(out["units"]),
                                   np.asarray(out["units_len"]), valid, strict=True):
            if not ok:
                continue
            hyp = [int(u) for u in row[:n]]
            if units.word_boundary is not None:
                ref = [u for u in ref if u != units.word_boundary]
                hyp = [u for u in hyp if u != units.word_boundary]
            refs.append(ref)
            hyps.append(hyp)
        if "lid" in out:  # clips with a language only (unlabelled speech has none)
            keep = valid & (np.asarray(batch["language"]) >= 0)
            labels.append(np.asarray(batch["language"])[keep])
            preds.append(np.asarray(out["lid"])[keep])
    result = {"per": metrics.error_counts(refs, hyps)}
    if units.kind == "phoneme":
        from lipjax.units.phonemes import load_inventory

        inventory = load_inventory()
        result["ver"] = metrics.viseme_error_counts([inventory.decode(r) for r in refs],
                                                    [inventory.decode(h) for h in hyps])
    if labels:
        result["lid_accuracy"] = metrics.lid_counts(np.concatenate(labels),
                                                    np.concatenate(preds))
    return result


def eval_metrics(outputs: list[dict[str, np.ndarray]], batches: list[dict],
                 config: ml_collections.ConfigDict) -> dict[str, float]:
    """`eval_counts` as rates."""
    return metrics.rates(eval_counts(outputs, batches, config))
