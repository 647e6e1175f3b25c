"""mTEDx / MuAViC builder (`tfds.data_source("mtedx/es_audio", ...)`); importing registers it."""

from data_builders.mtedx import mtedx_dataset_builder  # noqa: F401
