"""Common Voice builder (`tfds.data_source("lipjax_common_voice/it", ...)`); importing registers
it. The TFDS name has the project prefix because TFDS ships its own `common_voice`."""

from data_builders.common_voice import common_voice_dataset_builder  # noqa: F401
