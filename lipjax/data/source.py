"""Opening a built corpus split as a random-access source (TFDS array_record, no TensorFlow).

`tfds.data_source` only knows builders whose module has been imported, and with `download=True`
it would silently start building a missing corpus; here the builder module is imported by name
and a missing dataset is an error that says which command builds it.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds

BUILD_COMMANDS = {
        "synthetic_lips": "python -m data_builders.synthetic_lips --data_dir {data_dir} "
                          "--langs {lang} --modalities {modality}",
}


def register_builder(builder: str) -> None:
    """Imports `data_builders.<builder>` (and its `<builder>_dataset_builder` module), which
    registers the builder with TFDS; a builder registered elsewhere is left as is."""
    errors = []
    package = f"data_builders.{builder}"
    for module in (package, f"{package}.{builder}_dataset_builder"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            errors.append(f"{module}: {e}")
    if builder not in tfds.list_builders(with_community_datasets=False):
        raise ValueError(f"Dataset builder {builder!r} is not registered with TFDS and could not "
                         f"be imported ({'; '.join(errors) or 'module has no such builder'}). "
                         f"Expected a package data_builders/{builder}/.")


def build_command(builder: str, config: str, data_dir: str | os.PathLike[str]) -> str:
    """The shell command that builds `builder/config` into `data_dir`."""
    lang, _, modality = config.partition("_")
    template = BUILD_COMMANDS.get(builder)
    if template is None:
        return f"tfds build data_builders/{builder} --config {config} --data_dir {data_dir}"
    return template.format(data_dir=data_dir, lang=lang, modality=modality or "video")


def open_source(builder: str, config: str, split: str,
                data_dir: str | os.PathLike[str]) -> Sequence[dict[str, Any]]:
    """`tfds.data_source(f"{builder}/{config}", split=split, data_dir=data_dir)`; examples are
    dicts of numpy arrays (text as bytes)."""
    register_builder(builder)
    name = f"{builder}/{config}"
    try:
        dataset_builder = tfds.builder(name, data_dir=os.fspath(data_dir))
    except Exception as e:  # unknown config: TFDS's own message lists the valid ones
        raise ValueError(f"Cannot open dataset {name!r} in data_dir {data_dir}: {e}") from e
    if not dataset_builder.is_prepared():
        raise FileNotFoundError(
                f"Dataset {name!r} (builder {builder!r}, config {config!r}) is not built in "
                f"data_dir {data_dir} (looked for {dataset_builder.data_dir}). Build it with: "
                f"{build_command(builder, config, data_dir)}")
    if split not in dataset_builder.info.splits:
        raise ValueError(f"Dataset {name!r} in {data_dir} has no split {split!r}; it has "
                         f"{sorted(dataset_builder.info.splits)}.")
    return tfds.data_source(name, split=split, data_dir=os.fspath(data_dir), download=False)


def has_video(builder: str, config: str, data_dir: str | os.PathLike[str]) -> bool:
    """Whether the config's examples carry a `video` feature (video vs audio-text corpora)."""
    register_builder(builder)
    info = tfds.builder(f"{builder}/{config}", data_dir=os.fspath(data_dir)).info
    return "video" in info.features


def as_str(value: Any) -> str:
    """TFDS Text features come back as bytes from array_record sources."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
