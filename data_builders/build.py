"""The build command of every corpus, without TensorFlow (`tfds build` needs it):

    python -m data_builders NAME --manual_dir DIR [--data_dir out/data] [--config C ...]
        [--units_k K | --units_codebook STEM] [--<config option> VALUE ...] [--name NEW]

NAME is a corpus package (`lrs3`, `mtedx`, `mls`, `common_voice`, `voxpopuli`, `lrw`, `voxceleb2`,
`my_corpus`, or your own from data_builders/TEMPLATE). `--config` picks configs (repeatable;
default: the builder's only config, or all configs of a package made from the TEMPLATE). Every
field of the builder's config class is an option (`--units_k 100`, `--pretrain_max_seconds 0`,
`--roi_dir DIR`); options that change the data give the built config a new name (`en` +
`--units_k 100` -> `en_k100`, or `--name`), so that it never mixes with the plain one.
The last lines name what was written and how to read it with `tfds.data_source`.

    python -m data_builders tokenizer LANG --sources BUILDER/CONFIG/SPLIT[+...] [--data_dir D]

trains the language's SentencePiece tokenizer on built text (lipjax/data/tokenizer.py; --help).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from typing import Any

import tensorflow_datasets as tfds

from data_builders import manual_corpus, registry

DEFAULT_DATA_DIR = "out/data"
# BuilderConfig fields that are not options of the data.
_NOT_OPTIONS = {"name", "version", "release_notes", "supported_versions", "description", "tags"}
# Options that do not change what is written (where crops are found): no new config name.
_LOCATION_OPTIONS = {"roi_dir"}


def _parse_bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, found {value!r}")


def config_options(cls: type[tfds.core.GeneratorBasedBuilder]) -> dict[str, type]:
    """Option name -> type of the fields of the builder's config class."""
    configs = list(cls.BUILDER_CONFIGS)
    config_cls = type(configs[0]) if configs else getattr(cls, "CONFIG_CLASS", None)
    if config_cls is None or not dataclasses.is_dataclass(config_cls):
        return {}
    hints = {f.name: type(f.default) for f in dataclasses.fields(config_cls)
             if f.name not in _NOT_OPTIONS and f.default is not dataclasses.MISSING}
    return {k: t for k, t in hints.items() if t in (int, float, str, bool)}


def derived_name(base: str, overrides: dict[str, Any]) -> str:
    """The name of a config built with options: `<base>_k<K>` for units_k, else one
    `_<option><value>` per option (location options such as roi_dir add nothing)."""
    parts = [base]
    for key, value in sorted(overrides.items()):
        if key in _LOCATION_OPTIONS:
            continue
        if key == "units_k":
            parts.append(f"k{value}")
        else:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            parts.append(f"{key}{text}".replace("/", "-"))
    return "_".join(parts)


def resolve_configs(cls: type[tfds.core.GeneratorBasedBuilder], names: Sequence[str],
                    overrides: dict[str, Any], new_name: str = "") -> list[Any]:
    """The configs to build: named ones (or the default set), with `overrides` applied."""
    available = {c.name: c for c in cls.BUILDER_CONFIGS}
    if not names:
        if len(available) == 1 or getattr(cls, "BUILD_ALL_CONFIGS", False):
            names = list(available)
        else:
            raise SystemExit(f"{cls.name} has {len(available)} configs; choose with --config: "
                             f"{', '.join(available) or '(none: see its README)'}.")
    if new_name and len(names) != 1:
        raise SystemExit("--name renames one config; give a single --config with it.")
    configs = []
    for name in names:
        if name in available:
            config = available[name]
        elif hasattr(cls, "config_from_name"):
            config = cls.config_from_name(name)
        else:
            raise SystemExit(f"{cls.name} has no config {name!r}; it has: "
                             f"{', '.join(available)}.")
        if overrides:
            config = dataclasses.replace(config, name=new_name or derived_name(name, overrides),
                                         **overrides)
        elif new_name:
            config = dataclasses.replace(config, name=new_name)
        registered = available.get(config.name)
        if registered is not None and _data_fields(registered) != _data_fields(config):
            raise SystemExit(f"{cls.name}: the config built with these options is named "
                             f"{config.name!r}, the name of a config of {cls.name} built without "
                             "them; the two would overwrite each other's data. Choose another "
                             "--name.")
        configs.append(config)
    return configs


def _data_fields(config: Any) -> dict[str, Any]:
    """The config's fields that change what is written (all but the location options)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in _LOCATION_OPTIONS}


def make_builder(cls: type[tfds.core.GeneratorBasedBuilder], config: Any,
                 data_dir: str) -> tfds.core.GeneratorBasedBuilder:
    """The builder of `config`. TFDS refuses a config object that carries the name of one of
    the class's own configs; a config that differs from it only in location options (`en`
    with `--roi_dir`) writes the same data under the same name, so the builder is made with
    the class's config and then reads the locations from `config`."""
    registered = cls.builder_configs.get(config.name)
    if registered is None or registered is config:
        return cls(config=config, data_dir=data_dir)
    if _data_fields(registered) != _data_fields(config):  # resolve_configs refuses these
        raise ValueError(f"{cls.name}/{config.name}: differs from the config of that name in "
                         "more than its location options")
    builder = cls(config=registered, data_dir=data_dir)
    builder._builder_config = config  # what builder.builder_config returns
    if builder.builder_config is not config:
        raise RuntimeError(f"{cls.name}/{config.name}: this tensorflow_datasets version keeps a "
                           "builder's config elsewhere; data_builders/build.py::make_builder "
                           "cannot apply the location options (--roi_dir) to it")
    return builder


def build(name: str, manual_dir: str, data_dir: str = DEFAULT_DATA_DIR,
          configs: Sequence[str] = (), overrides: dict[str, Any] | None = None,
          new_name: str = "") -> dict[str, dict[str, int]]:
    """Builds the configs of corpus package `name` from `manual_dir` into `data_dir`; returns
    `<tfds name>/<config>` -> examples per split."""
    cls = registry.builder_cls(name)
    written = {}
    for config in resolve_configs(cls, configs, dict(overrides or {}), new_name):
        builder = make_builder(cls, config, data_dir)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP))
        splits = {s: builder.info.splits[s].num_examples for s in builder.info.splits}
        full = f"{cls.name}/{config.name}"
        written[full] = splits
        print(f"{full}: {splits} in {builder.data_dir}")
        print(f"  read with tfds.data_source({full!r}, split=..., data_dir={data_dir!r})")
    missing = manual_corpus.MISSING_PHONES.table()  # one table over every config and split
    if missing:
        print(missing)
    return written


def parser_for(cls: type[tfds.core.GeneratorBasedBuilder], prog: str) -> argparse.ArgumentParser:
    """The command's flags, with one option per config field of `cls`."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manual_dir", required=True,
                        help="the folder holding the corpus as downloaded (see its README)")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    choices = ", ".join(cls.builder_configs) or "see its README"
    parser.add_argument("--config", action="append", default=[],
                        help=f"config(s) to build: {choices}")
    parser.add_argument("--name", default="", help="name of the built config (with options)")
    options = parser.add_argument_group(f"options of {cls.name}'s configs")
    for key, kind in config_options(cls).items():
        options.add_argument(f"--{key}", type=_parse_bool if kind is bool else kind, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    name, rest = argv[0], argv[1:]
    cls = registry.builder_cls(name)
    args = parser_for(cls, f"python -m data_builders {name}").parse_args(rest)
    overrides = {k: getattr(args, k) for k in config_options(cls)
                 if getattr(args, k, None) is not None}
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("data_builders").setLevel(logging.INFO)  # the per-split build reports
    build(name, args.manual_dir, args.data_dir, args.config, overrides, args.name)
    return 0
