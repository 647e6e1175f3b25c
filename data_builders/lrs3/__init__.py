"""LRS3-TED builder (`tfds.data_source("lrs3/en", ...)`); importing registers it."""

from data_builders.lrs3 import lrs3_dataset_builder  # noqa: F401
