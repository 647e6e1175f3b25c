"""Opening a built corpus split as a random-access source (TFDS array_record, no TensorFlow).

A builder is named by its corpus package folder (`lrs3`, `mtedx`, `common_voice`, a package made
from data_builders/TEMPLATE), resolved through `data_builders.registry`: the folder's builder
may carry another TFDS name (`common_voice` is `lipjax_common_voice`, since TFDS ships a
`common_voice` of its own), and asking TFDS by folder name would open TFDS's dataset instead.
`tfds.data_source` only knows builders whose module has been imported, and with `download=True`
it would silently start building a missing corpus; here the builder module is imported by
name, and an unknown builder, an unknown config or a missing dataset is an error that lists
the real names or says which command builds it.
"""

from __future__ import annotations

import functools
import glob
import os
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds
from tensorflow_datasets.core import registered

from data_builders import registry

BUILD_COMMANDS = {
        "synthetic_lips": "python -m data_builders.synthetic_lips --data_dir {data_dir} "
                          "--langs {lang} --modalities {modality}",
}


@functools.cache
def tfds_name(builder: str) -> str:
    """The TFDS name of `builder`: a corpus package folder name (`common_voice` ->
    `lipjax_common_voice`), the TFDS name of a shipped builder itself, or a lipjax builder class
    registered in code (tests, benchmarks). Never one of TFDS's own datasets."""
    try:
        return registry.tfds_name(builder)
    except ValueError as e:
        package_error = e
    if builder.startswith(registry.PREFIX):  # `lipjax_common_voice`: the package's TFDS name
        folder = builder[len(registry.PREFIX):]
        if folder in registry.SHIPPED and registry.tfds_name(folder) == builder:
            return builder
    cls = registered._DATASET_REGISTRY.get(builder)  # noqa: SLF001 - imported classes only
    if cls is not None and not cls.__module__.startswith("tensorflow_datasets."):
        return builder
    raise ValueError(f"Unknown builder {builder!r} (a source's BUILDER part, or data.builder): "
                     f"{package_error}") from None


def builder_class(builder: str) -> type[tfds.core.DatasetBuilder]:
    """The registered TFDS builder class of `builder` (see `tfds_name`)."""
    name = tfds_name(builder)
    return registered._DATASET_REGISTRY[name]  # noqa: SLF001 - tfds_name registered it


def built_configs(builder: str, data_dir: str | os.PathLike[str]) -> list[str]:
    """Configs of `builder` built in `data_dir` (a version folder with its dataset_info.json),
    whatever their name."""
    folder = os.path.join(os.fspath(data_dir), tfds_name(builder))
    return sorted(os.path.basename(os.path.dirname(os.path.dirname(path))) for path in
                  glob.glob(os.path.join(glob.escape(folder), "*", "*", "dataset_info.json")))


def package_name(builder: str) -> str | None:
    """The corpus package folder that `builder` names (`lipjax_common_voice` -> common_voice),
    or None for a builder registered in code."""
    folder = builder[len(registry.PREFIX):] if builder.startswith(registry.PREFIX) else builder
    for name in (builder, folder):
        try:
            if registry.tfds_name(name) == tfds_name(builder):
                return name
        except ValueError:
            continue
    return None


def build_command(builder: str, config: str, data_dir: str | os.PathLike[str]) -> str:
    """The shell command that builds `builder/config` into `data_dir`."""
    template = BUILD_COMMANDS.get(builder)
    if template is not None:
        lang, _, modality = config.partition("_")
        return template.format(data_dir=data_dir, lang=lang, modality=modality or "video")
    package = package_name(builder)
    if package is not None:
        readme = (f" (see data_builders/{package}/README.md)" if package in registry.SHIPPED
                  else "")
        return (f"python -m data_builders {package} --manual_dir <the corpus as downloaded> "
                f"--data_dir {data_dir} --config {config}{readme}")
    return f"tfds build data_builders/{builder} --config {config} --data_dir {data_dir}"


def open_builder(builder: str, config: str,
                 data_dir: str | os.PathLike[str]) -> tfds.core.DatasetBuilder:
    """The prepared TFDS builder of `builder/config` in `data_dir`.

    A config that the builder does not declare opens from its files when it is built (configs
    made with build options, e.g. `en_k100` from `--units_k 100`, or my_corpus's `nl_video`)."""
    name = tfds_name(builder)
    declared = sorted(getattr(builder_class(builder), "builder_configs", {}) or {})
    built = built_configs(builder, data_dir)
    if config not in declared and config not in built:
        raise ValueError(
                f"Builder {builder!r} (TFDS {name!r}) has no config {config!r}. Its configs: "
                f"{', '.join(declared) or 'none declared'}; built in data_dir {data_dir}: "
                f"{', '.join(built) or 'none'}. A source is BUILDER/CONFIG[/SPLIT], e.g. "
                f"{builder}/{(declared or built or ['CONFIG'])[0]}.")
    try:
        dataset_builder = tfds.builder(f"{name}/{config}", data_dir=os.fspath(data_dir))
    except Exception as e:  # a declared config not built under this version, for instance
        raise FileNotFoundError(
                f"Dataset {builder}/{config} is not built in data_dir {data_dir} ({e}). Build it "
                f"with: {build_command(builder, config, data_dir)}") from e
    if not dataset_builder.is_prepared():
        raise FileNotFoundError(
                f"Dataset {builder}/{config} (TFDS {name}/{config}) is not built in data_dir "
                f"{data_dir} (looked for {dataset_builder.data_dir}). Build it with: "
                f"{build_command(builder, config, data_dir)}")
    return dataset_builder


def check_split(dataset_builder: tfds.core.DatasetBuilder, builder: str, config: str,
                split: str, data_dir: str | os.PathLike[str], hint: str = "") -> None:
    """`split` (TFDS slicing such as `train[:1000]` allowed) exists in the built dataset;
    `hint` says where the caller's split came from."""
    if split.partition("[")[0] not in dataset_builder.info.splits:
        raise ValueError(f"Dataset {builder}/{config} in {data_dir} has no split {split!r}; it "
                         f"has {', '.join(sorted(dataset_builder.info.splits))}.{hint}")


def open_source(builder: str, config: str, split: str, data_dir: str | os.PathLike[str],
                hint: str = "") -> Sequence[dict[str, Any]]:
    """`tfds.data_source` of `builder/config` (builder resolved by `tfds_name`), split `split`;
    examples are dicts of numpy arrays (text as bytes). `hint`: see `check_split`."""
    dataset_builder = open_builder(builder, config, data_dir)
    check_split(dataset_builder, builder, config, split, data_dir, hint)
    return tfds.data_source(f"{tfds_name(builder)}/{config}", split=split,
                            data_dir=os.fspath(data_dir), download=False)


def has_video(builder: str, config: str, data_dir: str | os.PathLike[str]) -> bool:
    """Whether the config's examples carry a `video` feature (video vs audio-text corpora)."""
    return "video" in open_builder(builder, config, data_dir).info.features


def as_str(value: Any) -> str:
    """TFDS Text features come back as bytes from array_record sources."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
