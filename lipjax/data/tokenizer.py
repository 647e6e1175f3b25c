"""A language's tokenizer trained on built corpora's text, the corpora opened by name.

    python -m data_builders tokenizer LANG --sources BUILDER/CONFIG/SPLIT[+BUILDER/CONFIG/SPLIT...]
        [--data_dir out/data] [--vocab 1000] [--character_coverage 1.0]

e.g. `python -m data_builders tokenizer es --sources
mls/es/train+voxpopuli/es/train+common_voice/es/train --data_dir out/data`. BUILDER is a corpus
package folder (`mls`, `common_voice`, your own from data_builders/TEMPLATE; its TFDS name comes
from data_builders/registry.py, so `common_voice` is lipjax's own builder) or a TFDS builder name,
CONFIG one of its built configs, SPLIT a split. The `text` of every example is read with
`tfds.data_source` (no TensorFlow), normalised with the language's normaliser
(`lipjax.languages`), and a unigram SentencePiece model is trained on it
(`lipjax.units.tokenizer.train_verified`) and written where training looks for the language's
tokenizer (`{data_dir}/tokenizers/{lang}.model`), replacing any there: its size becomes the
model's text vocabulary in stages 2 and 3 (`lipjax.models.factory.text_vocab`).

It prints the sentences and characters read per source, the vocabulary size (lowered, and said so,
when the text supports fewer pieces than asked for) and the character coverage; it fails, writing
nothing, when a character of the text could not be encoded (it would come out as " ⁇ "), naming
the character and a sentence that holds it. A source that is not built names the command that
builds it.

`lipjax.units.tokenizer` trains and loads SentencePiece models from any text; opening a built
corpus by name needs the builders and the data layer, so this step lives here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from collections.abc import Sequence

import sentencepiece as spm
import tensorflow_datasets as tfds
from etils import epath

from lipjax import languages
from lipjax.data import source
from lipjax.units import tokenizer
from lipjax.units.tokenizer import DEFAULT_VOCAB_SIZE

DEFAULT_DATA_DIR = "out/data"
_READ_BATCH = 1024


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


@dataclasses.dataclass(frozen=True)
class TextSource:
    """One built split whose text trains a tokenizer: `builder/config/split`."""

    builder: str
    config: str
    split: str

    def __str__(self) -> str:
        return f"{self.builder}/{self.config}/{self.split}"


def parse_sources(spec: str) -> list[TextSource]:
    """`builder/config/split[+builder/config/split...]` -> the sources, in order."""
    sources = []
    for part in spec.split("+"):
        fields = part.strip().split("/")
        if len(fields) != 3 or not all(f.strip() for f in fields):
            raise ValueError(f"--sources {spec!r}: each source is builder/config/split (e.g. "
                             f"mls/es/train), '+'-joined; found {part.strip()!r}.")
        sources.append(TextSource(*(f.strip() for f in fields)))
    if len(set(sources)) != len(sources):
        raise ValueError(f"--sources {spec!r}: a source is listed twice; its text would count "
                         "twice.")
    return sources


@dataclasses.dataclass(frozen=True)
class SourceText:
    """The normalised text of one source.

    Attributes:
        source: where it was read.
        dataset: the TFDS name read (`lipjax_common_voice/es`).
        texts: its non-empty normalised sentences, in order.
        empty: examples whose text was empty after normalising (left out).
    """

    source: TextSource
    dataset: str
    texts: list[str]
    empty: int

    @property
    def characters(self) -> int:
        return sum(len(t) for t in self.texts)


def _tfds_name(builder: str) -> tuple[str, str | None]:
    """(TFDS name, corpus package or None) of `builder`: a package folder, resolved through
    data_builders/registry.py, or the name of a builder already registered with TFDS."""
    from data_builders import registry

    try:
        return registry.tfds_name(builder), builder
    except ValueError as e:
        if builder in tfds.list_builders(with_community_datasets=False):
            return builder, None
        raise ValueError(f"--sources: {e}") from None


def _build_command(source_: TextSource, package: str | None, data_dir: str) -> str:
    if package == "synthetic_lips":
        return source.build_command(package, source_.config, data_dir)
    if package is None:
        return f"the build of TFDS dataset {source_.builder}/{source_.config} into {data_dir}"
    return (f"python -m data_builders {package} --manual_dir <the corpus as downloaded> "
            f"--data_dir {data_dir} --config {source_.config}")


def open_text_source(source_: TextSource, data_dir: str | os.PathLike[str]
                     ) -> tuple[str, Sequence[dict]]:
    """(TFDS name, random-access source of the split) with only `text` and `language` decoded
    (the audio and video of each record are read but not decoded)."""
    data_dir = os.fspath(data_dir)
    name, package = _tfds_name(source_.builder)
    root = epath.Path(data_dir) / name / source_.config
    versions = sorted((d for d in root.iterdir() if (d / "dataset_info.json").exists()),
                      key=lambda d: tfds.core.Version(d.name) if tfds.core.Version.is_valid(
                              d.name) else tfds.core.Version("0.0.0")) if root.exists() else []
    if not versions:
        raise FileNotFoundError(
                f"--sources {source_}: {name}/{source_.config} is not built in --data_dir "
                f"{data_dir} (no {root}/<version>/dataset_info.json). Build it with: "
                f"{_build_command(source_, package, data_dir)}")
    cls = tfds.builder_cls(name)
    if source_.config in cls.builder_configs:
        info = cls(config=source_.config, data_dir=data_dir).info
    else:  # a config built with options (`python -m data_builders mls --config es --name ...`)
        info = tfds.builder_from_directory(versions[-1]).info
    split = source_.split.split("[", 1)[0]
    if split not in info.splits:
        raise ValueError(f"--sources {source_}: {name}/{source_.config} in {data_dir} has no "
                         f"split {split!r}; it has {', '.join(sorted(info.splits))}.")
    decoders = {k: tfds.decode.SkipDecoding() for k in info.features
                if k not in ("text", "language")}
    if source_.config in cls.builder_configs:
        data = tfds.data_source(f"{name}/{source_.config}", split=source_.split,
                                data_dir=data_dir, download=False, decoders=decoders)
    else:
        data = tfds.builder_from_directory(versions[-1]).as_data_source(
                split=source_.split, decoders=decoders)
    return f"{name}/{source_.config}", data


def read_text(source_: TextSource, lang: str, data_dir: str | os.PathLike[str]) -> SourceText:
    """The normalised, non-empty sentences of one source; a source whose examples are of
    another language is an error."""
    language = languages.get(lang)
    dataset, data = open_text_source(source_, data_dir)
    texts, empty = [], 0
    for start in range(0, len(data), _READ_BATCH):
        for example in data.__getitems__(list(range(start, min(start + _READ_BATCH,
                                                                   len(data))))):
            found = source.as_str(example["language"])
            if found != lang:
                raise ValueError(f"--sources {source_}: its examples are in language "
                                 f"{found!r}, not {lang!r} (the tokenizer's language); name "
                                 f"the {lang} config of {source_.builder}.")
            text = language.normalize(source.as_str(example["text"]))
            if text:
                texts.append(text)
            else:
                empty += 1
    return SourceText(source_, dataset, texts, empty)


@dataclasses.dataclass(frozen=True)
class BuildReport:
    """What `build_tokenizer` read, trained and wrote."""

    language: str
    sources: list[SourceText]
    trained: tokenizer.Trained
    replaced: int | None  # pieces of the model it replaced, None if there was none

    def lines(self) -> list[str]:
        t = self.trained
        width = max(len(str(s.source)) for s in self.sources)
        out = [f"tokenizer {self.language}: text of {len(self.sources)} source(s)"]
        for s in self.sources:
            empty = f" ({s.empty:,} empty after normalising, left out)" if s.empty else ""
            out.append(f"  {str(s.source):<{width}}  {len(s.texts):>10,} sentences  "
                       f"{s.characters:>12,} characters  ({s.dataset}){empty}")
        total_chars = sum(s.characters for s in self.sources)
        out.append(f"  {'total':<{width}}  {t.sentences:>10,} sentences  "
                   f"{total_chars:>12,} characters")
        out.append(f"characters: {len(t.characters)} distinct besides space: {t.characters}")
        if t.added:
            out.append(f"  letters of the {self.language} alphabet missing from the text, "
                       f"given a piece anyway: {t.added}")
        if t.pieces < t.requested:
            out.append(f"vocabulary: {t.pieces} pieces (lowered from the {t.requested} "
                       f"requested: the text supports no more; more text gives more pieces)")
        else:
            out.append(f"vocabulary: {t.pieces} pieces")
        out.append(f"character coverage: {t.character_coverage}; every character encodes "
                   f"and all {t.sentences:,} sentences decode back to themselves")
        if self.replaced is not None and self.replaced != t.pieces:
            out.append(f"replaced a tokenizer of {self.replaced} pieces: runs trained with it "
                       f"no longer match (their text layer has {self.replaced} outputs)")
        out.append(f"wrote {t.path}; stages 2 and 3 read their text vocabulary "
                   f"({t.pieces}) from it")
        return out


def build_tokenizer(lang: str, sources: Sequence[TextSource] | str,
                    data_dir: str | os.PathLike[str] = DEFAULT_DATA_DIR,
                    vocab_size: int = DEFAULT_VOCAB_SIZE,
                    character_coverage: float = 1.0) -> BuildReport:
    """Trains the tokenizer of `lang` on the text of `sources` (all built in `data_dir`) and
    writes it to `languages.get(lang).tokenizer_path(data_dir)`.

    Raises:
        FileNotFoundError: a source is not built (the message names the build command).
        ValueError: a malformed or wrong-language source, no text.
        tokenizer.VocabularyTooSmall: `vocab_size` cannot hold the text's characters.
        tokenizer.EncodingError: characters that would not encode; nothing is written.
    """
    if not 0.98 <= character_coverage <= 1.0:
        raise ValueError(f"--character_coverage {character_coverage:g}: expected 0.98 to 1.0 "
                         "(SentencePiece's range; 1.0 keeps every character).")
    sources = parse_sources(sources) if isinstance(sources, str) else list(sources)
    if not sources:
        raise ValueError("--sources: no source given (builder/config/split, '+'-joined).")
    # Resolving the builders first imports their packages, which registers a user's language.
    for s in sources:
        _tfds_name(s.builder)
    language = languages.get(lang)
    read = [read_text(s, lang, data_dir) for s in sources]
    texts = [t for r in read for t in r.texts]
    if not texts:
        raise ValueError(f"--sources {'+'.join(map(str, sources))}: no non-empty text in "
                         f"{data_dir} to train the {lang} tokenizer on.")
    path = language.tokenizer_path(data_dir)
    replaced = tokenizer.piece_count(path) if path.exists() else None
    try:
        trained = tokenizer.train_verified(texts, path, vocab_size, alphabet=language.alphabet,
                                           character_coverage=character_coverage)
    except tokenizer.EncodingError as e:
        starts = [0]
        for r in read:
            starts.append(starts[-1] + len(r.texts))
        where = lambda i: next(str(r.source) for r, end in zip(read, starts[1:], strict=True)
                               if i < end)
        named = [f"{f.char!r} (U+{ord(f.char):04X}), e.g. in {f.example!r} ({where(f.index)})"
                 if f.example else f"{f.char!r} (U+{ord(f.char):04X}, alphabet)"
                 for f in e.failures]
        raise tokenizer.EncodingError(
                f"{len(e.failures)} character(s) of the {lang} training text cannot be encoded "
                f"by the trained tokenizer (they would come out as ' ⁇ ' or changed): "
                f"{'; '.join(named[:10])}. --character_coverage {character_coverage:g} leaves "
                f"rare characters out: use 1.0, or clean them from the text. Nothing was "
                f"written to {path}.", e.failures) from None
    return BuildReport(lang, read, trained, replaced)


def parser() -> argparse.ArgumentParser:
    """The command's flags; --help shows the module docstring less its last paragraph (where
    the code lives, not how to use it)."""
    p = argparse.ArgumentParser(prog="python -m data_builders tokenizer",
                                description=__doc__.strip().rsplit("\n\n", 1)[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lang", help="language code (lipjax.languages), e.g. es")
    p.add_argument("--sources", required=True,
                   help="builder/config/split of built text, '+'-joined, e.g. "
                        "mls/es/train+common_voice/es/train")
    p.add_argument("--data_dir", default=DEFAULT_DATA_DIR,
                   help="where the sources are built; the tokenizer goes to "
                        "DATA_DIR/tokenizers/LANG.model (default %(default)s)")
    p.add_argument("--vocab", "--vocab_size", dest="vocab", type=int,
                   default=DEFAULT_VOCAB_SIZE,
                   help="pieces (default %(default)s; fewer when the text supports fewer)")
    p.add_argument("--character_coverage", type=float, default=1.0,
                   help="SentencePiece character_coverage, 0.98 to 1.0 (default %(default)s: "
                        "every character of the text encodes; a lower value that leaves one "
                        "out fails)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """The command; 0 on success, 1 with the reason on stderr otherwise."""
    args = parser().parse_args(argv)
    tfds.disable_progress_bar()
    try:
        report = build_tokenizer(args.lang, args.sources, args.data_dir, args.vocab,
                                 args.character_coverage)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyError as e:  # an unknown language code: the registry's message
        print(f"error: {e.args[0]}", file=sys.stderr)
        return 1
    print("\n".join(report.lines()))
    return 0
