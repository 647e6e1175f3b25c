"""A language's tokenizer trained on a built corpus's text, the corpus opened by name.

`lipjax.units.tokenizer` trains and loads SentencePiece models from any text; opening a built
corpus by builder and config name needs the data layer (`lipjax.data.source`), so this step
lives here.
"""

from __future__ import annotations

import os

import sentencepiece as spm

from lipjax.data import source
from lipjax.units import tokenizer
from lipjax.units.tokenizer import DEFAULT_VOCAB_SIZE


def ensure_tokenizer(lang: str, data_dir: str | os.PathLike[str], builder: str = "synthetic_lips",
                     config: str | None = None,
                     vocab_size: int = DEFAULT_VOCAB_SIZE) -> spm.SentencePieceProcessor:
    """Loads the tokenizer of `lang`, training it first from `builder/config`'s train-split text
    (default config `{lang}_audio`, the largest text source) if the model file is missing."""
    config = config or f"{lang}_audio"
    return tokenizer.ensure_tokenizer(
            lang, data_dir,
            lambda: tokenizer.texts_of(source.open_source(builder, config, "train", data_dir)),
            vocab_size, source=f"{builder}/{config}")
