"""Per-language SentencePiece unigram tokenizers (the LMDecoder's text vocabulary).

The paper trains one unigram model of ~1000 pieces per language; ids are fixed across languages
(`lipjax.schema`: PAD=0, UNK=1, BOS=2, EOS=3) so models and losses can treat padding uniformly.
The model file lives next to the data it was trained on (`Language.tokenizer_path(data_dir)`).
"""

from __future__ import annotations

import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sentencepiece as spm
from etils import epath

from lipjax import languages
from lipjax.schema import BOS, EOS, PAD, UNK

log = logging.getLogger(__name__)

DEFAULT_VOCAB_SIZE = 1000

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")


def _train_bytes(texts: list[str], vocab_size: int) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            character_coverage=1.0,
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
    )
    return model.getvalue()


def train_tokenizer(texts: Iterable[str], model_path: str | os.PathLike[str],
                    vocab_size: int = DEFAULT_VOCAB_SIZE) -> spm.SentencePieceProcessor:
    """Trains a unigram model on `texts` and writes it to `model_path`.

    Small corpora (the tiny demo and test configs) cannot support 1000 pieces: the vocabulary then
    shrinks to what the text supports, with a warning, instead of failing.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"No non-empty text to train the tokenizer {model_path} on.")
    size = vocab_size
    while True:
        try:
            proto = _train_bytes(texts, size)
            break
        except RuntimeError as e:
            match = _TOO_HIGH.search(str(e))
            if match and int(match.group(2)) < size:
                size = int(match.group(2))
                continue
            raise ValueError(f"SentencePiece training for {model_path} failed with "
                             f"vocab_size={size} on {len(texts)} sentences: {e}") from e
    processor = spm.SentencePieceProcessor(model_proto=proto)
    if processor.get_piece_size() < vocab_size:
        log.warning("Tokenizer %s: the text (%d sentences) supports only %d pieces; "
                        "requested %d.", model_path, len(texts), processor.get_piece_size(),
                        vocab_size)
    path = epath.Path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(proto)
    tmp.rename(path)
    return processor


def load_tokenizer(lang: str, data_dir: str | os.PathLike[str]) -> spm.SentencePieceProcessor:
    """The tokenizer of `lang` stored under `data_dir`; a missing one says how to build it."""
    path = languages.get(lang).tokenizer_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(
                f"No SentencePiece model for language {lang!r} at {path}. Build the corpus and "
                f"its tokenizers with `python -m data_builders.synthetic_lips --data_dir "
                f"{data_dir} --langs {lang}`, or call lipjax.data.tokenizer.ensure_tokenizer("
                f"{lang!r}, {str(data_dir)!r}).")
    return spm.SentencePieceProcessor(model_proto=path.read_bytes())


def texts_of(examples: Sequence[Mapping[str, Any]]) -> list[str]:
    """The `text` of every example of a random-access source (TFDS gives text as bytes)."""
    texts = (examples[i]["text"] for i in range(len(examples)))
    return [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in texts]


def ensure_tokenizer(lang: str, data_dir: str | os.PathLike[str],
                     texts: Callable[[], Iterable[str]], vocab_size: int = DEFAULT_VOCAB_SIZE,
                     source: str = "") -> spm.SentencePieceProcessor:
    """Loads the tokenizer of `lang`, training it first on `texts()` if the model file is missing.

    The caller says where the text comes from (a builder it holds, or a corpus opened by name in
    `lipjax.data.tokenizer`): this layer sits below the builders and the data pipeline.
    """
    path = languages.get(lang).tokenizer_path(data_dir)
    if path.exists():
        return load_tokenizer(lang, data_dir)
    texts = list(texts())
    log.info("Training tokenizer %s on %d sentences of %s.", path, len(texts), source or "text")
    return train_tokenizer(texts, path, vocab_size)
