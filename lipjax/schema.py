"""The one example schema every lipjax corpus is written in, and the constants it fixes.

A clip is a mouth-region video (optional: audio-text corpora have none), 16 kHz audio, its
normalised transcript, shared units (phonemes in the shared IPA inventory and 25 Hz acoustic
units), and who/what language it is. This module imports only numpy, so that the low layers
(synthesis, preprocessing, units) learn the frame rate or crop size without importing TFDS; the
TFDS `FeaturesDict` is built from `CLIP_FIELDS` in `data_builders.features`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

FPS = 25
SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640: one 25 Hz frame of audio
ROI_SIZE = 96  # stored mouth crop, pixels per side

# Video normalisation on the way to the model: (pixel / 255 - MEAN) / STD.
MEAN = 0.421
STD = 0.165
# Batch keys that stay numpy object arrays on the host and are never sent to devices.
HOST_KEYS = ("id", "text")

# Text token ids, the same in every language's SentencePiece model (`lipjax.units.tokenizer`),
# so that models and losses treat padding and sentence ends uniformly.
PAD, UNK, BOS, EOS = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class Field:
    """One feature of a clip: a string (`dtype` None) or an array of `dtype` and `shape`
    (None = any length); `compressed` fields are stored zlib-encoded (large, compressible)."""

    name: str
    doc: str
    dtype: type[np.generic] | None = None
    shape: tuple[int | None, ...] = ()
    compressed: bool = False

    @property
    def is_text(self) -> bool:
        return self.dtype is None


ID = Field("id", "unique clip id within the builder config")
LANGUAGE = Field("language", "registry code (`lipjax.languages`)")
SPEAKER = Field("speaker", "speaker id string")
TEXT = Field("text", "normalised transcript (`Language.normalize`)")
PHONEMES = Field("phonemes", 'IPA phones separated by spaces, words separated by " | "')
PHONEME_IDS = Field("phoneme_ids", "ids of `phonemes` in the shared inventory "
                    "(`lipjax.units.phonemes`)", np.int32, (None,))
UNITS = Field("units", "acoustic unit per 25 Hz frame (not deduplicated); empty when not "
              "computed", np.int32, (None,))
AUDIO = Field("audio", "mono samples at 16 kHz", np.int16, (None,), compressed=True)
VIDEO = Field("video", "grayscale mouth crops at 25 fps (video corpora only)", np.uint8,
              (None, ROI_SIZE, ROI_SIZE), compressed=True)

# Every clip's fields in their stored order; `video` only in video corpora.
CLIP_FIELDS: tuple[Field, ...] = (ID, LANGUAGE, SPEAKER, TEXT, PHONEMES, PHONEME_IDS, UNITS,
                                  AUDIO, VIDEO)
FEATURE_NAMES: tuple[str, ...] = tuple(f.name for f in CLIP_FIELDS)


def clip_fields(with_video: bool = True) -> tuple[Field, ...]:
    """The fields of one clip of a video corpus, or of an audio-text corpus."""
    return CLIP_FIELDS if with_video else tuple(f for f in CLIP_FIELDS if f is not VIDEO)
