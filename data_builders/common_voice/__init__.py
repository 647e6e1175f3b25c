"""Common Voice builder (`tfds.data_source("common_voice/it", ...)`); importing registers it."""

from data_builders.common_voice import common_voice_dataset_builder  # noqa: F401
