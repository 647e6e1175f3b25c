"""Multilingual LibriSpeech builder (`tfds.data_source("mls/es", ...)`); importing registers it."""

from data_builders.mls import mls_dataset_builder  # noqa: F401
