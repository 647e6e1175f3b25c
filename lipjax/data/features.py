"""The one example schema every lipjax builder writes, so every later stage reads any corpus alike.

A clip is a mouth-region video (optional: audio-text corpora have none), 16 kHz audio, its
normalised transcript, shared units (phonemes in the shared IPA inventory and 25 Hz acoustic
units), and who/what language it is. `tfds.features.Video` needs TensorFlow even to construct,
so video is a zlib-compressed uint8 Tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_datasets as tfds

FPS = 25
SAMPLE_RATE = 16_000
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS  # 640
ROI_SIZE = 96  # stored mouth crop, pixels per side

Feature = Any


def clip_features(
        with_video: bool = True, extra: dict[str, Feature] | None = None
) -> tfds.features.FeaturesDict:
    """The FeaturesDict for one clip.

    Keys:
        id: unique clip id within the builder config.
        language: registry code (`lipjax.languages`).
        speaker: speaker id string.
        text: normalised transcript (`Language.normalize`).
        phonemes: IPA phones separated by spaces, words separated by " | ".
        phoneme_ids: int32 ids of `phonemes` in the shared inventory (`lipjax.units.phonemes`).
        units: int32 acoustic unit per 25 Hz frame (not deduplicated); empty when not computed.
        audio: int16 mono samples at 16 kHz.
        video: uint8 (T, 96, 96) grayscale mouth crops at 25 fps (video corpora only).
    """
    features: dict[str, Feature] = {
            "id": tfds.features.Text(),
            "language": tfds.features.Text(),
            "speaker": tfds.features.Text(),
            "text": tfds.features.Text(),
            "phonemes": tfds.features.Text(),
            "phoneme_ids": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "units": tfds.features.Tensor(shape=(None,), dtype=np.int32),
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding="zlib"),
    }
    if with_video:
        features["video"] = tfds.features.Tensor(
                shape=(None, ROI_SIZE, ROI_SIZE), dtype=np.uint8, encoding="zlib"
        )
    features.update(extra or {})
    return tfds.features.FeaturesDict(features)
