"""LRW builder (`tfds.data_source("lrw/en", ...)`); importing registers it."""

from data_builders.lrw import lrw_dataset_builder  # noqa: F401
