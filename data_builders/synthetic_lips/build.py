"""Preparing synthetic_lips configs: `build(...)`, or `python -m data_builders.synthetic_lips`.

    python -m data_builders.synthetic_lips --data_dir /data/tfds --langs en,it \
        --modalities video,audio [--sizes train=8,validation=4,test=4] [--seed 0]

builds each `synthetic_lips/{lang}_{modality}` (demo sizes unless --sizes) and then each
language's SentencePiece tokenizer from its text. It lives with the builder, not in
`lipjax.synth`, because it drives the TFDS builder that sits above the generator.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence

from data_builders.synthetic_lips import synthetic_lips_dataset_builder as sl
from lipjax.units import tokenizer


def build(langs: Sequence[str], modalities: Sequence[str], data_dir: str | os.PathLike[str],
          sizes: dict[str, int] | int | None = None, seed: int = 0) -> dict[str, sl.Builder]:
    """Prepares `synthetic_lips/{lang}_{modality}` for every pair; returns the builders by name.

    `sizes` overrides examples per split for every config (an int sets all three splits);
    None keeps the demo sizes. Already prepared configs are reused, so rebuilding with other
    sizes or another seed needs a fresh `data_dir`.
    """
    if isinstance(sizes, int):
        sizes = {"train": sizes, "validation": sizes, "test": sizes}
    builders = {}
    for lang in langs:
        for modality in modalities:
            name = f"{lang}_{modality}"
            if name not in sl.Builder.builder_configs:
                raise ValueError(f"synthetic_lips has no config {name!r}; languages "
                                 f"{sl.LANGUAGES}, modalities {sl.MODALITIES}.")
            builder = sl.Builder(config=name, data_dir=os.fspath(data_dir), sizes=sizes,
                                 seed=seed)
            builder.download_and_prepare()
            builders[name] = builder
    return builders


def _parse_sizes(text: str) -> dict[str, int] | int | None:
    if not text:
        return None
    if "=" not in text:
        return int(text)
    try:
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise ValueError(f"--sizes: expected an int or 'train=N,validation=N,test=N', "
                         f"found {text!r}.") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: build configs, then a tokenizer per language (from its audio-text config
    when built, else its video config)."""
    parser = argparse.ArgumentParser(prog="python -m data_builders.synthetic_lips",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="TFDS data_dir to write into.")
    parser.add_argument("--langs", default="en,es,fr,it,pt", help="comma-separated codes")
    parser.add_argument("--modalities", default="video,audio", help="video and/or audio")
    parser.add_argument("--sizes", default="", help="N or train=N,validation=N,test=N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_tokenizers", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    langs = [x for x in args.langs.split(",") if x]
    modalities = [x for x in args.modalities.split(",") if x]
    builders = build(langs, modalities, args.data_dir, _parse_sizes(args.sizes), args.seed)
    if args.no_tokenizers:
        return
    for lang in langs:
        modality = "audio" if "audio" in modalities else modalities[0]
        builder = builders[f"{lang}_{modality}"]
        tokenizer.ensure_tokenizer(
                lang, args.data_dir,
                lambda b=builder: tokenizer.texts_of(b.as_data_source("train")),
                source=f"synthetic_lips/{lang}_{modality}")
