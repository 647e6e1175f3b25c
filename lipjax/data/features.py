"""The example schema's names where the training side has always imported them.

The constants and fields live in the leaf module `lipjax.schema` (no TFDS), the TFDS
`FeaturesDict` with the builders in `data_builders.features`; both are re-exported here so that
`from lipjax.data.features import FPS, clip_features` keeps working.
"""

from __future__ import annotations

from data_builders.features import Feature, clip_features
from lipjax.schema import (
    FEATURE_NAMES,
    FPS,
    HOST_KEYS,
    MEAN,
    ROI_SIZE,
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    STD,
)

__all__ = ["FEATURE_NAMES", "FPS", "HOST_KEYS", "MEAN", "ROI_SIZE", "SAMPLES_PER_FRAME",
           "SAMPLE_RATE", "STD", "Feature", "clip_features"]
