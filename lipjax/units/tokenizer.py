"""Per-language SentencePiece unigram tokenizers (the LMDecoder's text vocabulary).

The paper trains one unigram model of ~1000 pieces per language; ids are fixed across languages
(`lipjax.schema`: PAD=0, UNK=1, BOS=2, EOS=3) so models and losses can treat padding uniformly.
The model file lives next to the data it was trained on (`Language.tokenizer_path(data_dir)`),
and its size is the model's text vocabulary (`lipjax.models.factory.text_vocab`).

Two ways to train: `train_tokenizer`, lenient (the synthetic corpus, quick tests: a vocabulary the
text cannot support shrinks with a warning), and `train_verified`, for a language's real text
(`python -m data_builders tokenizer`, lipjax/data/tokenizer.py): it keeps every character of the
text and of the language's alphabet encodable, checks that every sentence decodes back to itself,
and writes nothing otherwise, because a character the model cannot encode silently becomes the
unknown piece (decoded as " ⁇ ") in every transcript that holds it.
"""

from __future__ import annotations

import dataclasses
import functools
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
SPECIAL_PIECES = 4  # PAD, UNK, BOS, EOS
# SentencePiece skips longer training sentences without a word (its default limit, in bytes).
_SPM_MAX_SENTENCE_BYTES = 4192

_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


class VocabularyTooSmall(ValueError):
    """The requested vocabulary cannot hold one piece per character plus the special ids."""

    def __init__(self, message: str, needed: int) -> None:
        super().__init__(message)
        self.needed = needed


class EncodingError(ValueError):
    """Characters of the training text that the trained model cannot give back."""

    def __init__(self, message: str, failures: Sequence[Unencodable]) -> None:
        super().__init__(message)
        self.failures = tuple(failures)


def _train_bytes(texts: list[str], vocab_size: int, **options: Any) -> bytes:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=model,
            vocab_size=vocab_size,
            model_type="unigram",
            pad_id=PAD,
            unk_id=UNK,
            bos_id=BOS,
            eos_id=EOS,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
            **{"character_coverage": 1.0, **options},
    )
    return model.getvalue()


def _train_shrinking(texts: list[str], vocab_size: int, **options: Any) -> bytes:
    """Trains with `vocab_size` pieces, or with as many as the text supports when that is fewer
    (SentencePiece refuses a size its text cannot fill, and says the largest it can)."""
    size = vocab_size
    while True:
        try:
            return _train_bytes(texts, size, **options)
        except RuntimeError as e:
            match = _TOO_HIGH.search(str(e))
            if match and int(match.group(2)) < size:
                size = int(match.group(2))
                continue
            raise


def _write(proto: bytes, model_path: str | os.PathLike[str]) -> epath.Path:
    """Writes (or replaces) the model atomically: a reader never sees half a file."""
    path = epath.Path(model_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(proto)
    tmp.replace(path)
    return path


def train_tokenizer(texts: Iterable[str], model_path: str | os.PathLike[str],
                    vocab_size: int = DEFAULT_VOCAB_SIZE) -> spm.SentencePieceProcessor:
    """Trains a unigram model on `texts` and writes it to `model_path`.

    Small corpora (the tiny demo and test configs) cannot support 1000 pieces: the vocabulary then
    shrinks to what the text supports, with a warning, instead of failing.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"No non-empty text to train the tokenizer {model_path} on.")
    try:
        proto = _train_shrinking(texts, vocab_size)
    except RuntimeError as e:
        raise ValueError(f"SentencePiece training for {model_path} failed with "
                         f"vocab_size={vocab_size} on {len(texts)} sentences: {e}") from e
    processor = spm.SentencePieceProcessor(model_proto=proto)
    if processor.get_piece_size() < vocab_size:
        log.warning("Tokenizer %s: the text (%d sentences) supports only %d pieces; "
                    "requested %d.", model_path, len(texts), processor.get_piece_size(),
                    vocab_size)
    _write(proto, model_path)
    return processor


@dataclasses.dataclass(frozen=True)
class Unencodable:
    """A character that a trained model cannot give back.

    Attributes:
        char: the character.
        example: a training sentence holding it ("" for an alphabet character absent from the
            text).
        index: that sentence's position in the training text (-1 with no example).
        unknown: True when it encodes to the unknown id (decoded as " ⁇ "); False when it
            encodes but decodes as something else.
    """

    char: str
    example: str
    index: int
    unknown: bool

    def describe(self) -> str:
        what = "has no piece" if self.unknown else "does not decode back to itself"
        where = f" e.g. in {self.example!r}" if self.example else " (alphabet)"
        return f"{self.char!r} (U+{ord(self.char):04X}) {what}{where}"


def unencodable(processor: spm.SentencePieceProcessor, texts: Sequence[str],
                alphabet: str = "", batch: int = 4096) -> list[Unencodable]:
    """The characters of `texts` and `alphabet` that `processor` cannot round-trip, one example
    sentence each; empty when every sentence decodes back to itself."""
    unk = processor.unk_id()
    chars = set(alphabet)
    for text in texts:
        chars.update(text)
    chars.discard(" ")
    unknown = {c for c in chars if unk in processor.encode(c)}
    found: dict[str, Unencodable] = {}
    for start in range(0, len(texts), batch):
        chunk = list(texts[start:start + batch])
        for offset, (text, back) in enumerate(
                zip(chunk, processor.decode(processor.encode(chunk)), strict=True)):
            if back == text:
                continue
            bad = [c for c in dict.fromkeys(text) if c in unknown or c not in back]
            if not bad:  # the same characters, changed around: name the first difference
                at = next((i for i, (a, b) in enumerate(zip(text, back, strict=False)) if a != b),
                          min(len(text), len(back)) - 1)
                bad = [text[max(at, 0)]]
            for c in bad:
                found.setdefault(c, Unencodable(c, text, start + offset, c in unknown))
    for c in unknown - found.keys():
        found[c] = Unencodable(c, "", -1, True)
    return sorted(found.values(), key=lambda u: u.char)


@dataclasses.dataclass(frozen=True)
class Trained:
    """What `train_verified` trained and wrote.

    Attributes:
        processor: the model.
        path: where it was written.
        requested: the vocabulary size asked for.
        pieces: the vocabulary size trained (fewer when the text supports fewer).
        characters: the distinct characters of the text (spaces aside), sorted.
        added: characters of the language's alphabet that the text lacks, given a piece anyway.
        character_coverage: SentencePiece's character_coverage.
        sentences: training sentences.
    """

    processor: spm.SentencePieceProcessor
    path: epath.Path
    requested: int
    pieces: int
    characters: str
    added: str
    character_coverage: float
    sentences: int


def train_verified(texts: Sequence[str], model_path: str | os.PathLike[str],
                   vocab_size: int = DEFAULT_VOCAB_SIZE, *, alphabet: str = "",
                   character_coverage: float = 1.0) -> Trained:
    """Trains a unigram model on normalised `texts` that encodes every character of them and of
    `alphabet`, checks that every sentence decodes back to itself, and only then writes it.

    SentencePiece's own normalisation is off (`identity`): the text is already normalised by
    the language's normaliser, and SentencePiece's NFKC would change characters that it keeps
    ("ª" -> "a"), so that no transcript holding them could ever be decoded exactly. The alphabet
    goes in as `required_chars`, so that its letters get a piece whatever the coverage, even
    when a small sample lacks them.
    Sentences longer than SentencePiece's limit would be skipped silently: the limit is raised
    to the longest sentence. A vocabulary the text cannot fill shrinks to what it supports
    (`Trained.pieces`).

    Raises:
        ValueError: no non-empty sentence.
        VocabularyTooSmall: `vocab_size` cannot hold a piece per character and the special ids.
        EncodingError: characters that do not round-trip (with a lowered character_coverage);
            nothing is written.
    """
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise ValueError(f"No non-empty text to train the tokenizer {model_path} on.")
    characters = set()
    for text in texts:
        characters.update(text)
    characters.discard(" ")
    added = "".join(sorted(set(alphabet) - characters - {" "}))
    longest = max(len(t.encode("utf-8")) for t in texts)
    options = dict(normalization_rule_name="identity", character_coverage=character_coverage,
                   required_chars="".join(sorted(set(alphabet) - {" "})),
                   max_sentence_length=max(_SPM_MAX_SENTENCE_BYTES,
                                                                 longest + 1))
    try:
        proto = _train_shrinking(texts, vocab_size, **options)
    except RuntimeError as e:
        match = _TOO_SMALL.search(str(e))
        if match:
            needed = int(match.group(2))
            raise VocabularyTooSmall(
                    f"A vocabulary of {vocab_size} pieces cannot hold the text's characters: "
                    f"{needed} pieces are needed ({needed - SPECIAL_PIECES} characters, word "
                    f"boundary included, and {SPECIAL_PIECES} special ids). Ask for at least "
                    f"{needed} (--vocab {needed}).", needed) from e
        raise ValueError(f"SentencePiece training for {model_path} failed with "
                         f"vocab_size={vocab_size} on {len(texts)} sentences: {e}") from e
    processor = spm.SentencePieceProcessor(model_proto=proto)
    failures = unencodable(processor, texts, alphabet)
    if failures:
        raise EncodingError(
                f"{len(failures)} character(s) of the training text would come out as ' ⁇ ' "
                f"or changed: {'; '.join(f.describe() for f in failures[:10])}. Train with "
                f"character_coverage=1.0 (it is {character_coverage}) or remove them from the "
                f"text. {model_path} was not written.", failures)
    path = _write(proto, model_path)
    return Trained(processor, path, vocab_size, processor.get_piece_size(),
                   "".join(sorted(characters)), added, character_coverage, len(texts))


@functools.lru_cache(maxsize=64)
def _piece_count(path: str, mtime_ns: int, size: int) -> int:
    del mtime_ns, size  # the cache key: a rewritten file is read again
    return spm.SentencePieceProcessor(model_proto=epath.Path(path).read_bytes()).get_piece_size()


def piece_count(model_path: str | os.PathLike[str]) -> int:
    """The vocabulary size of the SentencePiece model at `model_path` (read once per version of
    the file: models are built more than once per run)."""
    stat = os.stat(os.fspath(model_path))
    return _piece_count(os.fspath(model_path), stat.st_mtime_ns, stat.st_size)


def load_tokenizer(lang: str, data_dir: str | os.PathLike[str]) -> spm.SentencePieceProcessor:
    """The tokenizer of `lang` stored under `data_dir`; a missing one says how to build it."""
    path = languages.get(lang).tokenizer_path(data_dir)
    if not path.exists():
        raise FileNotFoundError(
                f"No SentencePiece model for language {lang!r} at {path}. Train it on the "
                f"language's built text (builder/config/split sources, +-joined), e.g. "
                f"`python -m data_builders tokenizer {lang} --sources mls/{lang}/train"
                f"+common_voice/{lang}/train --data_dir {data_dir}`; for the synthetic corpus, "
                f"`python -m data_builders.synthetic_lips --data_dir {data_dir} --langs "
                f"{lang}` builds it with the corpus.")
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
