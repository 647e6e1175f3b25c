"""VoxCeleb2 builder (`tfds.data_source("voxceleb2/units100", ...)`); importing registers it."""

from data_builders.voxceleb2 import voxceleb2_dataset_builder  # noqa: F401
