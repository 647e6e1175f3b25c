"""The commands of a corpus package made from data_builders/TEMPLATE:

    python -m data_builders <name> --manual_dir DIR [--data_dir out/data] [--config C]
    python -m data_builders.<name> tokenizer [--data_dir out/data] [--vocab_size 1000]
    python -m data_builders.<name> train \
        --config configs/lmdecoder.py:small,lang=xx,builder=<name> --workdir out/runs/lmdecoder_xx
    python -m data_builders.<name> evaluate --workdir out/runs/finetune_xx_memory
    python -m data_builders.<name> transcribe --workdir out/runs/finetune_xx_memory \
        --video clip.mp4

(`python -m data_builders.<name> build ...` is the first command too.) Each runs where the
package has been imported, so its language is registered (`lipjax.languages.register`) before
anything asks for it: `train`, `evaluate` and `transcribe` start `python -m lipjax.train`,
`python -m experiments.evaluate` and `python -m experiments.transcribe` in a child process that
imports the package first, because the model's language-ID head and LMDecoder look languages up
as soon as it is built.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from collections.abc import Sequence

from data_builders import build as build_command
from data_builders import registry

DEFAULT_DATA_DIR = "out/data"


def build(package: str, manual_dir: str, data_dir: str, configs: Sequence[str] = ()) -> None:
    """Builds every config of the package's builder (or the named ones) from `manual_dir`."""
    build_command.build(package, manual_dir, data_dir, configs)


def tokenizer(package: str, data_dir: str, vocab_size: int) -> None:
    """Trains the SentencePiece model of each language the builder has, from its train text
    (the audio config when there is one: it is usually the larger)."""
    from lipjax.units.tokenizer import ensure_tokenizer, texts_of

    cls = registry.builder_cls(package)
    by_language: dict[str, str] = {}
    for config in cls.BUILDER_CONFIGS:
        if config.language not in by_language or not config.with_video:
            by_language[config.language] = config.name
    for language, config in by_language.items():
        builder = cls(config=config, data_dir=data_dir)
        sp = ensure_tokenizer(language, data_dir,
                              lambda b=builder: texts_of(b.as_data_source("train")),
                              vocab_size, source=f"{cls.name}/{config}")
        print(f"tokenizer {language}: {sp.get_piece_size()} pieces from {cls.name}/{config}")


# Imports the package, then runs a module as `__main__` with the remaining arguments.
_RUN = ("import importlib, runpy, sys; importlib.import_module(sys.argv.pop(1)); "
        "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")
# Commands whose arguments all belong to another module's absl flags.
FORWARDED = {"train": "lipjax.train", "evaluate": "experiments.evaluate",
             "transcribe": "experiments.transcribe"}


def run_module(package: str, module: str, argv: Sequence[str]) -> int:
    """`python -m MODULE ARGS` in a child process that imports the package first; returns its
    exit status."""
    return subprocess.run([sys.executable, "-c", _RUN, package, module, *argv],
                          check=False).returncode


def train(package: str, argv: Sequence[str]) -> int:
    """`python -m lipjax.train ARGS` with the package imported first (see `run_module`)."""
    return run_module(package, FORWARDED["train"], argv)


def main(package: str, argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in FORWARDED:  # the rest belongs to that module's absl flags
        return run_module(package, FORWARDED[argv[0]], argv[1:])
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
    sub.add_parser("evaluate", help="python -m experiments.evaluate (WER/CER of a run) with "
                                    "this language registered")
    sub.add_parser("transcribe", help="python -m experiments.transcribe (lip-read a video) with "
                                      "this language registered")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("data_builders").setLevel(logging.INFO)  # the per-split build reports
    if args.command == "build":
        build(package, args.manual_dir, args.data_dir, args.config)
    elif args.command == "tokenizer":
        tokenizer(package, args.data_dir, args.vocab_size)
    return 0
