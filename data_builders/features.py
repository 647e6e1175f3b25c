"""The TFDS `FeaturesDict` of the lipjax example schema (`lipjax.schema`), for every builder.

Builders are the only code that writes examples, so the TFDS encoding of the schema lives with
them; `lipjax.schema` stays free of TFDS. `tfds.features.Video` needs TensorFlow even to
construct, so video is a zlib-compressed uint8 Tensor.
"""

from __future__ import annotations

from typing import Any

import tensorflow_datasets as tfds

from lipjax import schema

Feature = Any


def feature(field: schema.Field) -> Feature:
    """The TFDS feature that stores `field`."""
    if field.is_text:
        return tfds.features.Text()
    return tfds.features.Tensor(shape=field.shape, dtype=field.dtype,
                                encoding="zlib" if field.compressed else "none")


def clip_features(
        with_video: bool = True, extra: dict[str, Feature] | None = None
) -> tfds.features.FeaturesDict:
    """The FeaturesDict for one clip: `lipjax.schema.clip_fields` (see each field's doc), plus
    a builder's `extra` features."""
    features: dict[str, Feature] = {f.name: feature(f) for f in schema.clip_fields(with_video)}
    features.update(extra or {})
    return tfds.features.FeaturesDict(features)
