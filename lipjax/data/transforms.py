"""Per-clip preprocessing and batch collation for the lipjax input pipeline.

Augmentation randomness comes only from (seed, process, element index), never from global state,
so a restored iterator reproduces exactly the batches it would have produced, and any worker count
gives the same clips. Video stays uint8 all the way to the device (4x fewer bytes than float32
between worker processes and on the host-to-device copy); the model's front end normalises it
(`lipjax.models.frontend.normalize`). Collation pads to a few length buckets and builds the
masks.

Time masking hides spans of a training clip (the frames show the dataset's mean pixel), each up
to `time_mask_frames` long: `time_masks` spans per clip, or, with `time_mask_per_second` > 0,
as many per second of clip (auto_avsr's adaptive time mask: one span of up to 0.4 s per second
of video), so that a 15-second clip is hidden as much, for its length, as a 2-second one.

Training clips longer than `max_frames` are dropped or cropped (`long_clips`); a dropped clip
comes out as a marker (`{"source": k, "dropped": frames}`) rather than vanishing, so that the
batcher counts it per source (lipjax/data/pipeline.py). Every clip carries `source`, its index
in the configured source list, so batches say where each row came from.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from lipjax import languages
from lipjax.data.source import as_str
from lipjax.schema import FPS, HOST_KEYS, MEAN, SAMPLES_PER_FRAME
from lipjax.units.acoustic import dedup

# What a time-masked frame shows: the dataset's mean pixel, so that it normalises to ~0.
MEAN_PIXEL = np.uint8(round(MEAN * 255))
LONG_CLIPS = ("drop", "crop")  # what training does with a clip longer than data.max_frames
SOURCE_KEY = "source"  # the example's index in the configured source list (added by the loader)


def clip_frames(ex: dict[str, Any], with_video: bool) -> int:
    """A clip's length in 25 Hz frames: its video frames, or for audio-only clips the longer of
    its unit track and its audio."""
    if with_video:
        return len(ex["video"])
    return max(len(ex["units"]), -(-len(ex["audio"]) // SAMPLES_PER_FRAME))


def missing_units_message(source: str) -> str:
    """Why acoustic targets cannot come from `source`, and the fix."""
    builder = source.split("/")[0]
    return (f"data.units=acoustic (model.unit_type) but {source} was built without acoustic "
            "units (its clips' `units` are empty: the targets would be all zeros). Rebuild it "
            f"with units, `python -m data_builders {builder} ... --units_k 100` (or "
            "--units_codebook STEM to share another corpus's codebook), which writes the config "
            f"under a new name such as <config>_k100, and name that config in data.sources; see "
            f"data_builders/{builder}/README.md.")


def check_unit_ids(ex: dict[str, Any], units: str, vocab: int, source: str) -> None:
    """Raises when `ex`'s targets of kind `units` ("acoustic" | "phoneme") are missing or reach
    `vocab` (the model's unit vocabulary): the loss would index past the unit head silently."""
    keys = ("units",) if units == "acoustic" else ("phoneme_ids", "frame_phonemes")
    if units == "acoustic" and len(ex["units"]) == 0:
        raise ValueError(missing_units_message(source))
    for key in keys:
        if key in ex and len(ex[key]) and int(np.max(ex[key])) >= vocab:
            raise ValueError(
                    f"{source} clip {as_str(ex['id'])!r}: {key} holds id {int(np.max(ex[key]))}, "
                    f"outside the model's {units} unit vocabulary of {vocab} (ids 0..{vocab - 1}; "
                    "config key model.unit_vocab, read by the loader as data.unit_vocab). Set "
                    "model.unit_vocab to the corpus's unit count (e.g. its --units_k), or use "
                    "corpora whose units share one codebook.")


def time_mask_count(frames: int, time_masks: int, per_second: float = 0.0) -> int:
    """How many time-mask spans a training clip of `frames` 25 Hz frames is given: `time_masks`,
    or with `per_second` > 0 that many per second of clip, a started second counting whole
    (auto_avsr: one per second, so 1 to 25 frames get one span, 26 to 50 two)."""
    if per_second <= 0:
        return time_masks
    # Rounded first, so that float error never turns a whole count into the next integer.
    return math.ceil(round(frames * per_second / FPS, 9))


def time_mask_spans(frames: int, count: int, max_span: int, rng: np.random.Generator
                    ) -> Iterator[tuple[int, int]]:
    """(start, length) of each of `count` spans drawn for a clip of `frames` frames: a length
    uniform in 0..`max_span`, then a start that keeps the span inside the clip. A span of length
    0, or one not shorter than the clip, hides nothing and is not yielded. The draws are those
    the fixed count always made, so that a config without `time_mask_per_second` masks the
    same frames as before it existed."""
    for _ in range(count):
        span = int(rng.integers(0, max_span + 1)) if max_span else 0
        if span and frames > span:
            yield int(rng.integers(0, frames - span + 1)), span


@dataclasses.dataclass
class ClipTransform:
    """Decoded TFDS example -> one clip dict (uint8 cropped video, unit/phoneme/token ids).

    Called through `MapDataset.map_with_index`; in training the index is the position in the
    (repeated, mixed) stream, so every epoch gets fresh but reproducible augmentation.
    """

    data_dir: str
    with_video: bool
    train: bool
    seed: int = 0
    process_index: int = 0
    crop: int = 88
    hflip: bool = True
    time_masks: int = 0
    time_mask_frames: int = 0
    time_mask_per_second: float = 0.0  # > 0: spans per second of clip instead of time_masks
    max_frames: int | None = None
    tokenize: bool = True
    downsample: int = 1  # average d x d pixel blocks before cropping (CPU-sized demos)
    long_clips: str = "drop"  # LONG_CLIPS: training clips over max_frames
    units: str = ""  # "acoustic" | "phoneme": check those targets against unit_vocab
    unit_vocab: int = 0
    sources: tuple[str, ...] = ()  # source labels by SOURCE_KEY, for error messages

    def __post_init__(self) -> None:
        if self.time_mask_per_second < 0:
            raise ValueError(f"data.time_mask_per_second={self.time_mask_per_second}: expected "
                             "spans per second of clip >= 0 (0: data.time_masks per clip).")
        if self.time_mask_per_second and self.time_masks:
            raise ValueError(
                    f"data.time_masks={self.time_masks} and data.time_mask_per_second="
                    f"{self.time_mask_per_second}: give spans per clip or per second of clip, "
                    "not both; set data.time_masks=0 to mask per second.")
        self._tokenizers: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:  # SentencePiece models reload in each worker
        state = dict(self.__dict__)
        state["_tokenizers"] = {}
        return state

    def tokenizer(self, lang: str) -> Any:
        if lang not in self._tokenizers:
            from lipjax.units.tokenizer import load_tokenizer

            self._tokenizers[lang] = load_tokenizer(lang, self.data_dir)
        return self._tokenizers[lang]

    def __call__(self, index: int, ex: dict[str, Any]) -> dict[str, Any]:
        source = int(ex.get(SOURCE_KEY, 0))
        if self.units:
            check_unit_ids(ex, self.units, self.unit_vocab, self._source_name(source))
        units = np.asarray(ex["units"], np.int32)
        frames = clip_frames(ex, self.with_video)
        rng = (np.random.default_rng([self.seed, self.process_index, index])
               if self.train else None)
        window = slice(0, frames)
        too_long = bool(rng is not None and self.max_frames and frames > self.max_frames)
        if too_long and self.long_clips != "crop":
            return {SOURCE_KEY: source, "dropped": frames}  # counted by the batcher
        if too_long:
            start = int(rng.integers(0, frames - self.max_frames + 1))
            window = slice(start, start + self.max_frames)
        # Units are per 25 Hz audio frame; a video may differ by a frame at the end.
        units = fit_frames(units, frames)[window]
        lang = as_str(ex["language"])
        text = as_str(ex["text"])
        out: dict[str, Any] = {
                "units": units,
                "dedup_units": dedup(units) if len(ex["units"]) else np.zeros(0, np.int32),
                "phoneme_ids": np.asarray(ex["phoneme_ids"], np.int32),
                "tokens": (np.asarray(self.tokenizer(lang).encode(text), np.int32)
                           if self.tokenize else np.zeros(0, np.int32)),
                "language": np.int32(languages.index(lang)),
                SOURCE_KEY: np.int32(source),
                "cropped": too_long,
                "id": as_str(ex["id"]),
                "text": text,
        }
        if "frame_phonemes" in ex:  # the phone sounding at each frame (synthetic corpora)
            out["frame_phonemes"] = fit_frames(np.asarray(ex["frame_phonemes"], np.int32),
                                               frames)[window]
        if self.with_video:
            out["video"], out["time_mask"] = self._video(np.asarray(ex["video"])[window], rng)
        return out

    def _source_name(self, source: int) -> str:
        return self.sources[source] if source < len(self.sources) else f"source {source}"

    def _video(self, video: np.ndarray, rng: np.random.Generator | None
               ) -> tuple[np.ndarray, np.ndarray]:
        if self.downsample > 1:
            d = self.downsample
            f, h, w = video.shape
            video = video[:, :h - h % d, :w - w % d].reshape(f, h // d, d, w // d, d)
            video = video.mean(axis=(2, 4), dtype=np.float32).round().astype(np.uint8)
        frames, height, width = video.shape
        if height < self.crop or width < self.crop:
            raise ValueError(f"Video frames are {height}x{width}, smaller than data.crop="
                             f"{self.crop}.")
        masked = np.zeros(frames, bool)
        if rng is None:  # evaluation: centre crop, no augmentation
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
            return video[:, top:top + self.crop, left:left + self.crop], masked
        top = int(rng.integers(0, height - self.crop + 1))
        left = int(rng.integers(0, width - self.crop + 1))
        video = video[:, top:top + self.crop, left:left + self.crop]
        if self.hflip and rng.random() < 0.5:
            video = video[:, :, ::-1]
        count = time_mask_count(frames, self.time_masks, self.time_mask_per_second)
        for start, span in time_mask_spans(frames, count, self.time_mask_frames, rng):
            masked[start:start + span] = True
        return video, masked


def bucket(length: int, buckets: Sequence[int]) -> int:
    """Smallest bucket >= length; past the largest, a multiple of the largest (eval only)."""
    for b in buckets:
        if length <= b:
            return int(b)
    top = int(buckets[-1])
    return -(-length // top) * top


def round_up(length: int, multiple: int) -> int:
    """Padded length for token-like sequences: a positive multiple of `multiple`."""
    return max(1, -(-length // multiple)) * multiple


def _pad_ids(seqs: Sequence[np.ndarray], batch: int, multiple: int
             ) -> tuple[np.ndarray, np.ndarray]:
    length = round_up(max((len(s) for s in seqs), default=0), multiple)
    ids = np.zeros((batch, length), np.int32)
    mask = np.zeros((batch, length), bool)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = True
    return ids, mask


def fit_frames(labels: np.ndarray, frames: int) -> np.ndarray:
    """Per-frame labels cut or edge-padded to `frames` (zeros when there are none)."""
    if len(labels) == 0:
        return np.zeros(frames, np.int32)
    if len(labels) >= frames:
        return labels[:frames]
    return np.pad(labels, (0, frames - len(labels)), mode="edge")


@dataclasses.dataclass
class Collate:
    """List of clips -> one padded batch of exactly `batch_size` rows.

    Missing rows (the end of an evaluation pass) are padding with `valid=False` and all masks
    False. Frame lengths go to `frame_buckets`; unit and phoneme id sequences to multiples of
    `token_bucket`, text tokens to multiples of `text_bucket` (text is several times shorter
    than its phonemes: one bucket for both would make the decoder run mostly on padding).
    """

    batch_size: int
    with_video: bool
    frame_buckets: Sequence[int]
    token_bucket: int = 16
    text_bucket: int = 16
    crop: int = 88

    def __call__(self, clips: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        b = self.batch_size
        if len(clips) > b:
            raise ValueError(f"Collate got {len(clips)} clips for a batch of {b}.")
        lengths = [len(c["units"]) for c in clips]
        t = bucket(max(lengths, default=1), self.frame_buckets)
        frame_mask = np.arange(t)[None] < np.array(lengths + [0] * (b - len(clips)))[:, None]
        batch: dict[str, np.ndarray] = {"frame_mask": frame_mask}
        # Per-frame labels: acoustic units always, the phone at each frame where a corpus has it.
        per_frame = ["units"] + (["frame_phonemes"]
                                 if clips and all("frame_phonemes" in c for c in clips) else [])
        for key in per_frame:
            batch[key] = np.zeros((b, t), np.int32)
            for i, c in enumerate(clips):
                batch[key][i, :lengths[i]] = c[key]
        if self.with_video:
            video = np.zeros((b, t, self.crop, self.crop), np.uint8)  # raw pixels
            for i, c in enumerate(clips):
                v = video[i, :lengths[i]]
                v[:] = c["video"]
                v[c["time_mask"]] = MEAN_PIXEL  # masked frames carry the dataset mean
            batch["video"] = video
            batch["video_mask"] = frame_mask.copy()
        for key, mask_key, multiple in (
                ("dedup_units", "dedup_units_mask", self.token_bucket),
                ("phoneme_ids", "phoneme_mask", self.token_bucket),
                ("tokens", "token_mask", self.text_bucket)):
            batch[key], batch[mask_key] = _pad_ids([c[key] for c in clips], b, multiple)
        for key in ("language", SOURCE_KEY):
            batch[key] = np.zeros(b, np.int32)
            batch[key][:len(clips)] = [c.get(key, 0) for c in clips]
        batch["valid"] = np.arange(b) < len(clips)
        for key in HOST_KEYS:
            batch[key] = np.array([c[key] for c in clips] + [""] * (b - len(clips)), dtype=object)
        return batch

