"""The commands of a corpus package made from data_builders/TEMPLATE:

    python -m data_builders.<name> build --manual_dir DIR [--data_dir out/data] [--config C]
    python -m data_builders.<name> tokenizer [--data_dir out/data] [--vocab_size 1000]
    python -m data_builders.<name> train \
        --config configs/lmdecoder.py:small,lang=xx,builder=<name> --workdir out/runs/lmdecoder_xx

Each runs in a process where the package has been imported, so its language is registered
(`lipjax.languages.register`) before anything asks for it: the trainer builds the model, whose
language-ID head and LMDecoder look languages up, before it opens the data.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

import tensorflow_datasets as tfds

from lipjax.data.features import FPS

DEFAULT_DATA_DIR = "out/data"


def _builder_cls(package: str) -> type[tfds.core.GeneratorBasedBuilder]:
    importlib.import_module(package)  # registers the language and the builder
    name = package.rsplit(".", 1)[-1]
    try:
        return tfds.builder_cls(name)
    except Exception as e:
        raise ValueError(f"Package {package} registers no TFDS builder named {name!r}: its "
                         f"module must be {package}/{name}_dataset_builder.py with a class "
                         "`Builder` (see data_builders/TEMPLATE).") from e


def build(package: str, manual_dir: str, data_dir: str, configs: Sequence[str] = ()) -> None:
    """Builds every config of the package's builder (or the named ones) from `manual_dir`."""
    cls = _builder_cls(package)
    names = list(configs) or [c.name for c in cls.BUILDER_CONFIGS]
    for name in names:
        builder = cls(config=name, data_dir=data_dir)
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
                manual_dir=manual_dir, compute_stats=tfds.download.ComputeStatsMode.SKIP))
        splits = {s: builder.info.splits[s].num_examples for s in builder.info.splits}
        print(f"{cls.name}/{name}: {splits} in {data_dir} ({FPS} fps, 16 kHz)")


def tokenizer(package: str, data_dir: str, vocab_size: int) -> None:
    """Trains the SentencePiece model of each language the builder has, from its train text
    (the audio config when there is one: it is usually the larger)."""
    from lipjax.units.tokenizer import ensure_tokenizer

    cls = _builder_cls(package)
    by_language: dict[str, str] = {}
    for config in cls.BUILDER_CONFIGS:
        if config.language not in by_language or not config.with_video:
            by_language[config.language] = config.name
    for language, config in by_language.items():
        sp = ensure_tokenizer(language, data_dir, builder=cls.name, config=config,
                              vocab_size=vocab_size)
        print(f"tokenizer {language}: {sp.get_piece_size()} pieces from {cls.name}/{config}")


def train(package: str, argv: Sequence[str]) -> None:
    """`python -m lipjax.train ARGS` with the package imported first."""
    from absl import app

    importlib.import_module(package)
    from lipjax.train import __main__ as train_main

    app.run(train_main.main, argv=[f"{package} train", *argv])


def main(package: str, argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "train":  # the rest belongs to lipjax.train's absl flags
        train(package, argv[1:])
        return
    parser = argparse.ArgumentParser(prog=f"python -m {package}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_build = sub.add_parser("build", help="build the TFDS configs from your clips")
    p_build.add_argument("--manual_dir", required=True, help="folder with manifest.csv")
    p_build.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    p_build.add_argument("--config", action="append", default=[], help="only these configs")
    p_tok = sub.add_parser("tokenizer", help="train the language's SentencePiece model")
    p_tok.add_argument("--data_dir", default=DEFAULT_DATA_DIR)
    p_tok.add_argument("--vocab_size", type=int, default=1000)
    sub.add_parser("train", help="python -m lipjax.train with this language registered")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "build":
        build(package, args.manual_dir, args.data_dir, args.config)
    elif args.command == "tokenizer":
        tokenizer(package, args.data_dir, args.vocab_size)
