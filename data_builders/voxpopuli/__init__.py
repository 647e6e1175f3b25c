"""VoxPopuli builder (`tfds.data_source("voxpopuli/fr", ...)`); importing registers it."""

from data_builders.voxpopuli import voxpopuli_dataset_builder  # noqa: F401
