"""Shared machinery for builders of real corpora that users download by hand (TFDS `manual_dir`).

Every such builder finds the corpus root, lists clips, reads media, skips and counts broken items,
normalises text, adds phonemes and acoustic units, and writes `clip_features`; a corpus builder
only describes its layout (`find_root`, `list_clips`, optionally `read_transcript`). Paths are
`etils.epath`: any filesystem, and the TFDS test harness forbids `os`/`open` in builders.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import features as features_lib
from lipjax import languages, schema
from lipjax.units import corpus_units

log = logging.getLogger(__name__)

# Why an item is skipped; the build log counts each.
MISSING_FILE = "missing_file"
NO_VIDEO_STREAM = "no_video_stream"  # an audio-only file in a video config
UNDECODABLE_VIDEO = "undecodable_video"
UNDECODABLE_AUDIO = "undecodable_audio"
NO_FACE = "no_face"
EMPTY_TRANSCRIPT = "empty_transcript"
NON_UTF8_TRANSCRIPT = "non_utf8_transcript"
BAD_TRANSCRIPT = "bad_transcript"
# Not a broken file: the item is of another modality than the config reads (a manifest may mix
# audio recordings and videos; the video config leaves the audio ones to the audio config).
OTHER_MODALITY = frozenset({NO_VIDEO_STREAM})

_PHONEMIZE_BATCH = 64


class LayoutError(FileNotFoundError):
    """The manual_dir does not hold the corpus as distributed: names the file expected where."""


class BadItem(Exception):
    """One clip cannot be used; it is skipped and counted under `reason`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


class BadItemLog:
    """Counts skipped items per reason and keeps the first few paths of each, for the build log;
    also counts phones that the shared inventory lacks (they are dropped from `phoneme_ids`) and
    espeak-ng's unknown markers (`??`, never phones)."""

    def __init__(self, where: str, keep: int = 5, language: str = "") -> None:
        self.where, self.keep, self.kept, self.language = where, keep, 0, language
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: dict[str, list[str]] = collections.defaultdict(list)
        self.unknown_phones: collections.Counter[str] = collections.Counter()
        self.espeak_markers: collections.Counter[str] = collections.Counter()
        self.phones = 0  # phones kept in phoneme_ids

    def skip(self, reason: str, path: str, detail: str = "") -> None:
        self.counts[reason] += 1
        if len(self.examples[reason]) < self.keep:
            self.examples[reason].append(f"{path} ({detail})" if detail else path)

    def report(self) -> str:
        """Logs and returns the split's summary: clips written, broken items per reason, items
        of the other modality apart from them, and phones missing from the inventory. A warning
        when anything is broken or a phone is missing; info otherwise."""
        other = sum(n for r, n in self.counts.items() if r in OTHER_MODALITY)
        broken = sum(self.counts.values()) - other
        lines = [f"{self.where}: wrote {self.kept} clips, skipped {broken + other} "
                 f"({broken} broken or unusable, {other} of another modality)."]
        for title, mine in (("broken or unusable:", False),
                            ("of another modality (for the other config; not a problem):", True)):
            reasons = [(r, n) for r, n in self.counts.most_common()
                       if (r in OTHER_MODALITY) == mine]
            lines += [f"  {title}"] if reasons else []
            lines += [f"    {r}: {n}, e.g. " + "; ".join(self.examples[r]) for r, n in reasons]
        missing = sum(self.unknown_phones.values())
        if missing:
            total = missing + self.phones
            MISSING_PHONES.add(self.where, self.language, self.unknown_phones, total)
            lines.append(f"  phones missing from the inventory: {missing} of {total} "
                         f"({100 * missing / total:.1f} %), left out of phoneme_ids; the build "
                         "ends with one table of them over every split.")
        if self.espeak_markers:
            lines.append(f"  espeak-ng could not pronounce {sum(self.espeak_markers.values())} "
                         f"letters (its '??' markers, left out): check the transcripts' script.")
        message = "\n".join(lines)
        (log.warning if broken or missing or self.espeak_markers else log.info)(message)
        return message


class MissingPhones:
    """Phones missing from the inventory over a whole build (every config and split), reported
    as one table with the lines that declare them in the language's package."""

    def __init__(self) -> None:
        self.counts: dict[str, collections.Counter[str]] = {}
        self.totals: dict[str, int] = {}
        self.language: dict[str, str] = {}

    def add(self, where: str, language: str, phones: collections.Counter, total: int) -> None:
        self.counts.setdefault(where, collections.Counter()).update(phones)
        self.totals[where] = self.totals.get(where, 0) + total
        self.language[where] = language

    def table(self) -> str:
        """The table (empty when nothing was missing), and forget what was counted."""
        out = [self._language_table(code) for code in dict.fromkeys(self.language.values())]
        self.__init__()
        return "\n\n".join(out)

    def _language_table(self, code: str) -> str:
        columns = [w for w, c in self.language.items() if c == code]
        phones = collections.Counter()
        for where in columns:
            phones.update(self.counts[where])
        heads = [w.rsplit("/", 1)[-1] if "/" in w else w for w in columns]
        width = max(len(h) for h in heads + ["phone"]) + 2
        rows = [["phone", *heads, "total"]]
        rows += [[p, *(str(self.counts[w][p]) for w in columns), str(n)]
                 for p, n in phones.most_common()]
        rows.append(["missing %", *(f"{100 * sum(self.counts[w].values()) / self.totals[w]:.1f}"
                                    for w in columns), ""])
        text = [f"PHONES MISSING FROM THE INVENTORY for language {code!r}: left out of "
                "phoneme_ids in every split below, so its phoneme units are incomplete "
                "(acoustic units are unaffected)."]
        text += ["  " + rows[0][0].ljust(10) + "".join(c.rjust(width) for c in rows[0][1:])]
        text += ["  " + r[0].ljust(10) + "".join(c.rjust(width) for c in r[1:]) for r in rows[1:]]
        text += [f"Declare them in the package that registers {code!r}: add to its "
                 "languages.Language(...)", "    phones={"]
        text += [f"        {p!r}: {_guess(p)}," for p in phones]
        text += ["    },",
                 "(each value: a viseme class of lipjax/synth/visemes.py, classes joined by '+' "
                 "for a diphthong, or a phone lipjax knows that it looks like; the values above "
                 "are read from the symbols: check them), then build again. Nothing under "
                 "lipjax/ is edited."]
        return "\n".join(text)


def _guess(phone: str) -> str:
    """The value to declare for `phone`, read from its symbols, or a TODO naming the choices."""
    from lipjax.synth import visemes

    try:
        return repr("+".join(visemes.own_classes(phone)))
    except KeyError:
        names = ", ".join(n for n in visemes.VISEMES if n != "silence")
        return f"'TODO',  # no class from its symbols: one of {names}, or a phone it looks like"


MISSING_PHONES = MissingPhones()


def require(path: epath.Path, what: str, hint: str = "") -> epath.Path:
    """`path` if it exists, else a LayoutError naming what was expected there."""
    if not path.exists():
        raise LayoutError(f"Expected {what} at {path}, but it does not exist. {hint}".strip())
    return path


def find_root(manual_dir: epath.Path, candidates: Sequence[str], markers: Sequence[str],
              what: str) -> epath.Path:
    """The first `manual_dir/<candidate>` holding any of `markers` (globs), else a LayoutError."""
    tried = []
    for candidate in candidates:
        root = manual_dir / candidate if candidate else manual_dir
        for marker in markers:
            if root.exists() and next(iter(root.glob(marker)), None) is not None:
                return root
            tried.append(str(root / marker))
    raise LayoutError(f"Expected {what} in manual_dir {manual_dir}: looked for "
                      + ", ".join(tried) + " and found none.")


def read_tsv(path: epath.Path, columns: Sequence[str]) -> list[tuple[int, dict[str, str] | None]]:
    """(line number, row by column name) of a headed TSV; no quoting (transcripts hold bare
    quotes). A row that is not UTF-8 is None; a header without `columns` is a LayoutError."""
    lines = read_utf8_lines(require(path, "a tab-separated listing"))
    header = [h.strip() for h in (lines[0] or "").split("\t")] if lines else []
    missing = [c for c in columns if c not in header]
    if missing:
        raise LayoutError(f"{path}: expected columns {list(columns)} in the header line, "
                          f"found {header}.")
    rows: list[tuple[int, dict[str, str] | None]] = []
    for n, line in enumerate(lines[1:], start=2):
        if line is None or line.strip():
            values = (line or "").split("\t")  # csv.QUOTE_NONE with a tab delimiter
            values += [""] * (len(header) - len(values))
            rows.append((n, None if line is None else dict(zip(header, values, strict=False))))
    return rows


def read_text(path: epath.Path, encoding: str = "utf-8") -> str:
    """A transcript file's text; a missing or undecodable file is a BadItem."""
    if not path.exists():
        raise BadItem(MISSING_FILE, f"no transcript {path.name}")
    try:
        return path.read_bytes().decode(encoding)
    except UnicodeDecodeError as e:
        raise BadItem(NON_UTF8_TRANSCRIPT, str(e)) from None


def read_utf8_lines(path: epath.Path) -> list[str | None]:
    """Lines of a listing file; a line that is not UTF-8 becomes None (that item is skipped)."""
    out: list[str | None] = []
    for raw in path.read_bytes().split(b"\n"):
        try:
            out.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError:
            out.append(None)
    if out and out[-1] == "":
        out.pop()
    return out


# ----------------------------------------------------------------------------------------- media
# Decoding is lipjax.preprocess's (PyAV); here its errors become skip reasons.
def _preprocess():
    from lipjax import preprocess  # lazy: the `preprocess` extra (PyAV, dlib)

    return preprocess


@functools.lru_cache(maxsize=2)
def _decode_audio(path: str) -> np.ndarray:
    """A whole file's audio, int16 16 kHz mono (cached: a talk's segments are cut in order)."""
    preprocess = _preprocess()
    try:
        audio = preprocess.load_audio(path)
    except preprocess.PreprocessError as e:
        raise BadItem(UNDECODABLE_AUDIO, str(e)) from None
    if not len(audio):
        raise BadItem(UNDECODABLE_AUDIO, "no audio samples")
    return audio


def load_audio(path: epath.Path, start: float | None = None, end: float | None = None
               ) -> np.ndarray:
    """int16 16 kHz mono samples of `path`, optionally only [start, end) seconds."""
    if not path.exists():
        raise BadItem(MISSING_FILE, f"no audio {path.name}")
    return cut(_decode_audio(os.fspath(path)), start, end, schema.SAMPLE_RATE,
               UNDECODABLE_AUDIO)


def cut(x: np.ndarray, start: float | None, end: float | None, rate: float, reason: str
        ) -> np.ndarray:
    """Samples or frames [start, end) seconds of `x` (all of it when both are None)."""
    if start is None and end is None:
        return x
    lo = int(round((start or 0.0) * rate))
    segment = x[lo:] if end is None else x[lo:int(round(end * rate))]
    if not len(segment):
        raise BadItem(reason, f"segment {start}-{end} s is outside the {len(x) / rate:.2f} s file")
    return segment


def decode_gray_video(path: epath.Path) -> np.ndarray:
    """uint8 (T, 96, 96) frames at 25 fps of an already-cropped video (MuAViC's mouth crops)."""
    preprocess = _preprocess()
    if not path.exists():
        raise BadItem(MISSING_FILE, f"no video {path.name}")
    try:
        frames = list(preprocess.iter_video(os.fspath(path), schema.FPS, pix_fmt="gray"))
    except preprocess.NoVideoError as e:
        raise BadItem(NO_VIDEO_STREAM, str(e)) from None
    except preprocess.PreprocessError as e:
        raise BadItem(UNDECODABLE_VIDEO, str(e)) from None
    size = schema.ROI_SIZE
    if not frames or frames[0].shape != (size, size):
        found = f"{frames[0].shape[1]}x{frames[0].shape[0]}" if frames else "no frames"
        raise BadItem(UNDECODABLE_VIDEO, f"expected {size}x{size} crops, found {found}")
    return np.stack(frames).astype(np.uint8)


def mouth_roi(path: epath.Path) -> np.ndarray:
    """Raw face video -> uint8 (T, 96, 96) mouth crops at 25 fps (lipjax.preprocess)."""
    if not path.exists():
        raise BadItem(MISSING_FILE, f"no video {path.name}")
    result = _roi_or_error(os.fspath(path))
    if isinstance(result, BadItem):
        raise result
    return result


@functools.lru_cache(maxsize=1)  # pieces of one long clip are listed together: crop it once
def _roi_or_error(path: str) -> np.ndarray | BadItem:
    preprocess = _preprocess()
    try:
        video = np.asarray(preprocess.mouth_roi(path), np.uint8)
    except preprocess.NoFaceError as e:
        return BadItem(NO_FACE, str(e))
    except preprocess.NoVideoError as e:
        return BadItem(NO_VIDEO_STREAM, str(e))
    except preprocess.PreprocessError as e:
        return BadItem(UNDECODABLE_VIDEO, str(e))
    return video if len(video) else BadItem(UNDECODABLE_VIDEO, "no frames")


# ---------------------------------------------------------------------------------- the builder
@dataclasses.dataclass(frozen=True)
class Clip:
    """One item as listed from the layout, before any media is read: `path` is the main media
    file (video for video configs), `audio_path` a separate audio file, `start`/`end` seconds cut
    from a longer file; text is `text`, else read from `text_path`; `extra` more feature values."""

    id: str
    speaker: str
    path: epath.Path
    text: str | None = None
    text_path: epath.Path | None = None
    audio_path: epath.Path | None = None
    start: float | None = None
    end: float | None = None
    extra: tuple[tuple[str, Any], ...] = ()
    problem: str = ""  # a reason found while listing (e.g. a non-UTF-8 transcript line)

    @classmethod
    def unreadable(cls, listing: epath.Path, line: int) -> Clip:
        """A listing line that is not UTF-8: kept so that it is counted, never read."""
        return cls(f"{listing.name}:{line}", "", listing, problem=NON_UTF8_TRANSCRIPT)


@dataclasses.dataclass(eq=False)
class ManualCorpusConfig(tfds.core.BuilderConfig):
    """Options every manual-corpus config has.

    Attributes:
        language: registry code of the transcripts (`und` for unlabelled speech).
        with_video: write a `video` feature (mouth crops).
        video_is_roi: the corpus already ships 96x96 mouth crops (decode only, no face search).
        roi_dir: crops made beforehand on all cores by `python -m lipjax.preprocess MANUAL_DIR
            ROI_DIR` (`<ROI_DIR>/<path under manual_dir>.{npz,mp4}`); others are cropped here.
        units_k: acoustic units per 25 Hz frame from a k-means codebook of this size; 0 = none.
        units_codebook: reuse the codebook `{data_dir}/units/<name>.npy` (e.g. another corpus's,
            so that stage-1 targets and the LMDecoder share units) instead of fitting one.
        units_sample: train clips sampled to fit the codebook.
        units_seed: seed of that sample and of k-means.
    """

    language: str = "en"
    with_video: bool = False
    video_is_roi: bool = False
    roi_dir: str = ""
    units_k: int = 0
    units_codebook: str = ""
    units_sample: int = 300
    units_seed: int = 0


class ManualCorpusBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the real-corpus builders: subclasses describe the layout, this writes the clips."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    REQUIRES_TEXT = True  # False for unlabelled corpora (VoxCeleb2): no text is no problem
    UNITS_FIT_SPLIT = "train"  # the split whose clips fit the units codebook

    def __init__(self, *, file_format: str | None = None, **kwargs: Any) -> None:
        super().__init__(file_format=file_format or "array_record", **kwargs)

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        """The corpus root inside manual_dir; raise LayoutError if it is not there."""
        raise NotImplementedError

    def list_clips(self, root: epath.Path) -> dict[str, list[Clip]]:
        """TFDS split name -> clips in a deterministic order."""
        raise NotImplementedError

    def read_transcript(self, path: epath.Path) -> str:
        """Raw transcript of a per-clip text file (default: the whole UTF-8 file)."""
        return read_text(path)

    def extra_features(self) -> dict[str, Any]:
        """Features added to `clip_features` (e.g. LRW's `label`)."""
        return {}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(features=features_lib.clip_features(
                self.builder_config.with_video, self.extra_features()))

    def split_source(self, root: epath.Path, split: str) -> str:
        """Where a split's clips are listed (for messages about it); builders name the folder or
        file of their layout."""
        return f"{root} (split {split})"

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        self._manual_dir = epath.Path(dl_manager.manual_dir)
        root = self.find_root(self._manual_dir)
        listed = self.list_clips(root)
        splits = {name: clips for name, clips in listed.items() if clips}
        for name in listed.keys() - splits.keys():  # TFDS refuses a split without examples
            log.warning("%s/%s: no clips listed for split %r in %s; the split is left out.",
                        self.name, self.builder_config.name, name, self.split_source(root, name))
        if not splits:
            raise LayoutError(f"{self.name}/{self.builder_config.name}: found no clips in any "
                              f"split under {root}; expected " + "; ".join(
                                      self.split_source(root, n) for n in listed or ["train"]))
        self._root = root
        units = self._corpus_units(splits)
        return {name: self._generate_examples(clips, name, units) for name, clips in splits.items()}

    def _corpus_units(self, splits: dict[str, list[Clip]]) -> corpus_units.CorpusUnits | None:
        config = self.builder_config
        if config.units_codebook:
            return corpus_units.load_units(self.data_dir_root, config.units_codebook)
        if not config.units_k:
            return None
        fit_clips = splits.get(self.UNITS_FIT_SPLIT) or []
        if not fit_clips:
            raise LayoutError(f"units_k={config.units_k} needs clips in split "
                              f"{self.UNITS_FIT_SPLIT!r} to fit the codebook; found none.")
        sample = corpus_units.sample(fit_clips, config.units_sample, config.units_seed)

        def sample_audio() -> Iterator[np.ndarray]:  # file order: a talk is decoded once
            for clip in sorted(sample, key=lambda c: (str(c.audio_path or c.path), c.start or 0)):
                with contextlib.suppress(BadItem):
                    yield self._audio(clip)

        return corpus_units.ensure_units(self.data_dir_root, self.codebook_name(), config.units_k,
                                         sample_audio, seed=config.units_seed)

    def codebook_name(self) -> str:
        """Stem of the fitted codebook; a builder overrides it to share one between configs."""
        config = self.builder_config
        return corpus_units.codebook_name(self.name, config.name, config.units_k)

    def _audio(self, clip: Clip) -> np.ndarray:
        return load_audio(clip.audio_path or clip.path, clip.start, clip.end)

    def _load(self, clip: Clip) -> dict[str, Any]:
        """Reads one clip's text (first: it is cheap) and media; any problem is a BadItem."""
        config = self.builder_config
        if clip.problem:
            raise BadItem(clip.problem)
        text = clip.text
        if text is None and clip.text_path is not None:
            text = self.read_transcript(clip.text_path)
        text = normalize(text or "", config.language)
        if self.REQUIRES_TEXT and not text:
            raise BadItem(EMPTY_TRANSCRIPT)
        example: dict[str, Any] = {"text": text, **dict(clip.extra)}
        if config.with_video:
            example["video"] = cut(self._video(clip.path), clip.start, clip.end,
                                   schema.FPS, UNDECODABLE_VIDEO)
        example["audio"] = self._audio(clip)
        return example

    def _video(self, path: epath.Path) -> np.ndarray:
        config = self.builder_config
        if config.video_is_roi:
            return decode_gray_video(path)
        if config.roi_dir and path.is_relative_to(self._manual_dir):
            done = epath.Path(config.roi_dir) / path.relative_to(self._manual_dir).with_suffix("")
            npz, mp4 = done.with_name(done.name + ".npz"), done.with_name(done.name + ".mp4")
            if npz.exists():
                with npz.open("rb") as f:
                    return np.asarray(np.load(f)["video"], np.uint8)
            if mp4.exists():
                return decode_gray_video(mp4)
        return mouth_roi(path)

    def _generate_examples(self, clips: list[Clip], split: str,
                           units: corpus_units.CorpusUnits | None):
        config = self.builder_config
        bad = BadItemLog(f"{self.name}/{config.name} split {split}", language=config.language)
        for start in range(0, len(clips), _PHONEMIZE_BATCH):
            ready = []
            for clip in clips[start:start + _PHONEMIZE_BATCH]:
                try:
                    ready.append((clip, self._load(clip)))
                except BadItem as e:  # named by its last path parts: the corpus-relative name
                    bad.skip(e.reason, "/".join(clip.path.parts[-3:]), e.detail)
            phones = corpus_units.phoneme_units([ex["text"] for _, ex in ready], config.language,
                                                markers=bad.espeak_markers)
            for (clip, example), (phone_str, ids, unknown) in zip(ready, phones, strict=True):
                bad.unknown_phones.update(unknown)
                bad.phones += len(ids)
                example.update(id=clip.id, language=config.language, speaker=clip.speaker,
                               phonemes=phone_str, phoneme_ids=ids,
                               units=units(example["audio"]) if units else np.zeros(0, np.int32))
                bad.kept += 1
                yield clip.id, example
        report = bad.report()
        if not bad.kept:  # TFDS would stop with "No examples were yielded", naming nothing
            source = self.split_source(self._root, split)
            raise LayoutError(f"Every clip of split {split!r} ({source}) was skipped, so the "
                              f"split cannot be written:\n{report}")


@functools.cache
def _language(code: str) -> languages.Language:
    """The registry entry, or an unregistered stand-in so any corpus language is normalised."""
    if code in languages.codes():
        return languages.get(code)
    return languages.Language(code, code, code, code, num2words_code=None)


def normalize(text: str, language: str) -> str:
    """Transcript normalisation shared with the metrics (`Language.normalize`)."""
    return _language(language).normalize(text) if text else ""

