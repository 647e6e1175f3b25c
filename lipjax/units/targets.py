"""Which units a run learns and reads, decided once from the config.

The unit type (IPA phonemes or k-means acoustic units) and, for phonemes, whether they come one
per phone (`sequence`) or one per 25 Hz frame (`frames`, where a corpus knows each frame's
phone) decide the batch keys every stage reads, the stage-1 loss, how predictions are scored
and the size of the unit vocabulary (memory slots, unit-head classes). `UnitTargets` carries
those answers so that no task compares strings.
"""

from __future__ import annotations

import dataclasses

UNIT_TYPES = ("phoneme", "acoustic")
PHONEME_TARGETS = ("sequence", "frames")
ACOUSTIC_VOCAB = 100  # k-means units of the synthetic corpus's shared codebook


@dataclasses.dataclass(frozen=True)
class UnitTargets:
    """kind: "phoneme" | "acoustic"; frames: one label per video/audio frame (frame CE in
    stage 1, frame-rate input to the LMDecoder) rather than a sequence (CTC in stage 1)."""

    kind: str
    frames: bool

    @classmethod
    def from_names(cls, unit_type: str, phoneme_targets: str = "sequence") -> UnitTargets:
        if unit_type not in UNIT_TYPES:
            raise ValueError(f"config model.unit_type: expected one of {UNIT_TYPES}, "
                             f"found {unit_type!r}")
        if phoneme_targets not in PHONEME_TARGETS:
            raise ValueError(f"config model.phoneme_targets: expected one of "
                             f"{PHONEME_TARGETS}, found {phoneme_targets!r}")
        # Acoustic units are per frame by construction (25 Hz k-means on the audio).
        return cls(unit_type, unit_type == "acoustic" or phoneme_targets == "frames")

    @property
    def frame_key(self) -> str:
        """Per-frame labels (stage-1 frame CE targets)."""
        return "units" if self.kind == "acoustic" else "frame_phonemes"

    @property
    def sequence_keys(self) -> tuple[str, str]:
        """(ids, mask) of the reference unit sequence that stage-1 predictions are scored on."""
        if self.kind == "acoustic":
            return "dedup_units", "dedup_units_mask"
        return "phoneme_ids", "phoneme_mask"

    @property
    def lmdecoder_keys(self) -> tuple[str, str]:
        """(ids, mask) of what the LMDecoder reads in stage 2: the frame-rate phone sequence
        (silence included) when units are per frame, so that stage 3's frames read the same
        kind of sequence; repeats-removed acoustic units as in the paper; else phonemes."""
        if self.kind == "phoneme" and self.frames:
            return "frame_phonemes", "frame_mask"
        return self.sequence_keys

    @property
    def drop_silence(self) -> bool:
        """Phone id 0 is silence/blank, not a unit to score; every acoustic unit counts."""
        return self.kind == "phoneme"

    @property
    def word_boundary(self) -> int | None:
        """The unit id of the word boundary `|`, excluded from error rates (phonemes only)."""
        from lipjax.units.phonemes import WORD_ID

        return WORD_ID if self.kind == "phoneme" else None

    def vocab_size(self, override: int = 0) -> int:
        """Unit vocabulary size (`override` > 0 wins): the phone inventory or K."""
        if override > 0:
            return override
        if self.kind == "acoustic":
            return ACOUSTIC_VOCAB
        from lipjax.units.phonemes import load_inventory

        return load_inventory().size
