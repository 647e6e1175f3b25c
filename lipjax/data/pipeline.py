"""The grain input pipeline: built corpus splits -> padded, masked host-local numpy batches.

What is read is the mixture of `data.sources` (`BUILDER/CONFIG[/SPLIT][@EVAL_SPLIT][:WEIGHT]`
entries; lipjax/data/mixture.py).

The stream is cut into `data.num_shards` data shards (default: one per JAX process), fixed for
the run whatever the process count: shard s of every source is its contiguous slice s -> seeded
shuffle -> repeat (training); sources are mixed with configured weights; each clip is decoded,
augmented (seeded by shard, not process) and tokenised; clips are collated into
`batch_size // num_shards` rows padded to length buckets. A process reads `num_shards //
process_count` shards and stacks their rows, so 1 process with 2 shards yields the very global
batches that 2 processes yield together, and a checkpoint (one iterator state per shard) resumes
on either. Each row carries `source`, its entry's index in data.sources.
Training streams forever; evaluation is one pass in which every example appears exactly once, the
last batch padded with rows whose `valid` is False. The loader is a grain `DatasetIterator`, so its
state is checkpointed with the model and a restored loader continues the identical stream.

Nothing is lost without a word: training clips longer than data.max_frames are dropped (the
default: a cut clip's transcript would no longer match it) or, with data.long_clips=crop, cut to
a window (for per-frame targets); either is counted per source, in a log line when the loader
opens and in `Loader.clip_counts()`, and a source with no clip short enough is an error. With
data.units set (configs link it to model.unit_type, and data.unit_vocab to model.unit_vocab),
missing acoustic units and unit ids outside the vocabulary are errors naming the source.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import grain
import jax
import numpy as np

from lipjax import languages
from lipjax.data import mixture as mixture_lib
from lipjax.data import sharding
from lipjax.data import source as source_lib
from lipjax.data.mixture import (  # noqa: F401 - the mixture's names, read from here too
    EVAL,
    SOURCE_SYNTAX,
    TRAIN,
    Source,
    distinct,
    eval_sources,
    mixture,
    parse_source,
    parse_sources,
)
from lipjax.data.transforms import (
    LONG_CLIPS,
    SOURCE_KEY,
    ClipTransform,
    Collate,
    check_unit_ids,
    clip_frames,
)
from lipjax.units.targets import UNIT_TYPES, UnitTargets

log = logging.getLogger(__name__)

COUNTS = ("read", "dropped", "cropped")  # Loader.clip_counts, per source
COUNTS_KEY = "_clip_counts"  # a train batch's counts until the Loader takes them out

DEFAULTS: dict[str, Any] = {
        **mixture_lib.DEFAULTS,  # builder, split, eval_split
        "languages": (),  # the languages a source may hold; empty: any registered one
        "long_clips": "drop",  # LONG_CLIPS: training clips over max_frames (see make_loader)
        "units": "",  # "phoneme" | "acoustic" (model.unit_type): check those targets; "": none
        "unit_vocab": 0,  # model.unit_vocab (0: the unit type's default size)
        "frame_buckets": (50, 75, 100, 150),
        "max_frames": None,  # None: the largest frame bucket
        "token_bucket": 16,  # unit/phoneme id sequences pad to multiples of this
        "text_bucket": 16,  # SentencePiece token sequences pad to multiples of this
        "crop": 88,
        "hflip": True,
        "time_mask_frames": 0,
        "time_masks": 0,
        "time_mask_per_second": 0.0,  # > 0: spans per second of clip instead of time_masks
        "tokenizer_vocab": 1000,
        "num_workers": 0,
        "read_threads": 4,  # threads decoding clips inside each process
        "tokenize": True,  # False: no SentencePiece model needed (`tokens` are empty)
        "downsample": 1,  # >1: average d x d pixel blocks first (crop is then in those pixels)
        "num_shards": 0,  # data shards of the stream; 0: one per JAX process
}
# Clips read at loader open, per source, to count those longer than data.max_frames (all of a
# smaller source, else a seeded sample).
PROBE_CLIPS = 256


def _cfg(data_cfg: Any, key: str) -> Any:
    return mixture_lib.config_value(data_cfg, key, DEFAULTS)


def shard_range(num_examples: int, index: int, count: int) -> tuple[int, int]:
    """Contiguous even shard [start, end) of process `index`; the first shards take the rest."""
    base, rest = divmod(num_examples, count)
    start = index * base + min(index, rest)
    return start, start + base + (index < rest)


@dataclasses.dataclass
class _EmptyBatch:
    collate: Collate

    def __call__(self, _: Any) -> dict[str, np.ndarray]:
        return self.collate([])


class Loader(grain.DatasetIterator):
    """Host-local batches with grain iterator state (`get_state`/`set_state`).

    Holds one grain iterator per local data shard (`shards`); a batch is their batches stacked
    row-wise, padded to the largest bucket among them. Training: iterating continues the endless
    stream. Evaluation: a finite pass of `len(loader)` batches (the same count on every process);
    iterating again after it ends starts a new pass. `clip_counts()` says how many training
    clips each source gave, and how many of them were dropped or cropped for length.
    """

    def __init__(self, datasets: Sequence[grain.IterDataset], *, train: bool,
                 num_batches: int | None, shards: Sequence[int] = (0,), num_shards: int = 1,
                 labels: dict[int, str] | None = None):
        if len(datasets) != len(shards):
            raise ValueError(f"Loader: {len(datasets)} datasets for shards {list(shards)}")
        self._datasets = list(datasets)
        self.train = train
        self.num_batches = num_batches
        self.shards = tuple(int(s) for s in shards)
        self.num_shards = int(num_shards)
        self.labels = dict(labels or {})  # source index -> label, of the sources read
        self._counts = np.zeros((max(self.labels, default=0) + 1, len(COUNTS)), np.int64)
        self._started = False
        super().__init__([iter(d) for d in self._datasets])

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("A training loader is endless; it has no length.")
        return self.num_batches

    def __iter__(self) -> Loader:
        if not self.train and self._started:
            for parent in self._parents:
                parent.close()
            self._started = False
            super().__init__([iter(d) for d in self._datasets])
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        self._started = True
        parts = [next(parent) for parent in self._parents]
        for part in parts:
            counts = part.pop(COUNTS_KEY, None)
            if counts is not None:
                self._counts[:len(counts)] += counts
        if len(parts) == 1:
            return parts[0]
        dims = sharding.max_dims(parts)
        parts = [sharding.pad_to(p, dims) for p in parts]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def clip_counts(self) -> dict[str, dict[str, int]]:
        """Per source label, the training clips this process has read since the loader was
        made ("read"), and of those, "dropped" (longer than data.max_frames, with
        data.long_clips=drop) and "cropped" (with data.long_clips=crop). Evaluation reads
        every clip whole: all zeros."""
        return {label: {name: int(self._counts[index, i]) for i, name in enumerate(COUNTS)}
                for index, label in sorted(self.labels.items())}

    def shard_states(self) -> dict[int, Any]:
        """The iterator state of each local shard, by shard index (checkpointed per shard)."""
        return {s: parent.get_state() for s, parent in zip(self.shards, self._parents,
                                                          strict=True)}

    def set_shard_states(self, states: dict[int, Any]) -> None:
        self._started = True
        for s, parent in zip(self.shards, self._parents, strict=True):
            parent.set_state(states[s])

    def get_state(self) -> dict[str, Any]:
        if len(self._parents) == 1:
            return self._parents[0].get_state()
        return {"shards": {str(s): st for s, st in self.shard_states().items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        if len(self._parents) == 1:
            self._started = True
            self._parents[0].set_state(state)
        else:
            self.set_shard_states({int(s): st for s, st in state["shards"].items()})


def process_shard() -> grain.sharding.ShardOptions:
    """Which JAX process this is (shard_index) out of how many (shard_count)."""
    return grain.sharding.ShardByJaxProcess()


def local_shards(num_shards: int, process_index: int, process_count: int) -> range:
    """The data shards process `process_index` reads: a contiguous block of the same size on
    every process, so the global batch is shards 0..num_shards-1 in order."""
    if num_shards % process_count:
        raise ValueError(f"data.num_shards={num_shards} must be a multiple of the number of JAX "
                         f"processes ({process_count}).")
    per = num_shards // process_count
    return range(process_index * per, (process_index + 1) * per)


@dataclasses.dataclass
class _Opened:
    """A source opened for one loader: its data and what it holds."""

    source: Source
    label: str
    data: Sequence[dict[str, Any]]
    with_video: bool
    language: str


def _open(src: Source, split: str, data_dir: str) -> _Opened:
    label = src.label(split)
    data = source_lib.open_source(
            src.builder, src.config, src.read_split(split), data_dir,
            hint=f" An entry {SOURCE_SYNTAX} of data.sources names its own splits; one that "
                 "names none reads data.split in training and data.eval_split in evaluation.")
    with_video = source_lib.has_video(src.builder, src.config, data_dir)
    language = source_lib.as_str(data[0]["language"]) if len(data) else ""
    return _Opened(src, label, data, with_video, language)


def _check_languages(opened: Sequence[_Opened], allowed: Sequence[str], units: str) -> None:
    """Every source's language is registered (its LID index and tokenizer exist) and, when
    data.languages is set, one of those. Unlabelled speech (VoxCeleb2, language "und") serves
    only stage 1 with acoustic units: it has no text and no language-ID target."""
    for corpus in opened:
        if not corpus.language:
            continue
        if corpus.language == languages.UNLABELLED:
            if allowed or units != "acoustic":
                raise ValueError(
                        f"{corpus.label}: unlabelled clips (language {languages.UNLABELLED!r}) "
                        "have no text and no phone sequence; they train stage 1 with acoustic "
                        "units only (units=acoustic, data.units='acoustic'). Drop the source "
                        "from data.sources for this run.")
            continue
        if corpus.language not in languages.codes():
            raise ValueError(
                    f"{corpus.label}: its clips' language {corpus.language!r} is not registered "
                    f"in lipjax.languages (known: {', '.join(languages.codes())}); every "
                    "source's language must be known. Register it "
                    "(data_builders/adding_a_language.md) or drop the source from data.sources.")
        if allowed and corpus.language not in allowed:
            raise ValueError(f"{corpus.label} holds {corpus.language!r} clips, but this run "
                             f"reads {', '.join(allowed)} (data.languages, from the config's "
                             "lang argument); drop the source or change lang.")


def _unit_settings(data_cfg: Any) -> tuple[str, int]:
    """(unit type, vocabulary size) the loader checks targets against; ("", 0): none."""
    units = str(_cfg(data_cfg, "units") or "")
    if not units:
        return "", 0
    if units not in UNIT_TYPES:
        raise ValueError(f"data.units={units!r} (linked to model.unit_type): expected one of "
                         f"{UNIT_TYPES}.")
    return units, UnitTargets.from_names(units).vocab_size(int(_cfg(data_cfg, "unit_vocab")))


def _probe_lengths(corpus: _Opened, max_frames: int, long_clips: str, units: str, vocab: int,
                   seed: int) -> None:
    """Reads a source's clips (all, or a seeded sample of PROBE_CLIPS) at loader open: logs how
    many are longer than data.max_frames, stops when none would be left (a stream that drops
    every clip never yields a batch), and checks the unit targets early."""
    n = len(corpus.data)
    if n == 0:
        return
    every = n <= PROBE_CLIPS
    indices = (range(n) if every else
               np.sort(np.random.default_rng(seed).choice(n, PROBE_CLIPS, replace=False)))
    lengths = []
    for i in indices:
        ex = corpus.data[int(i)]
        if units:
            check_unit_ids(ex, units, vocab, corpus.label)
        lengths.append(clip_frames(ex, corpus.with_video))
    lengths = np.asarray(lengths)
    long = int((lengths > max_frames).sum())
    read = (f"{n} clip{'s' * (n > 1)}" if every
            else f"a sample of {len(lengths)} of its {n} clips")
    span = f"{lengths.min()}-{lengths.max()} frames"
    if long == len(lengths) and long_clips == "drop":
        raise ValueError(
                f"data.max_frames={max_frames}: every clip of {corpus.label} is longer ({read}, "
                f"{span}), so training would read nothing from it. Raise data.max_frames to at "
                f"least {lengths.min()} (the frame buckets, data.frame_buckets, should reach it "
                "too), set data.long_clips=crop, or drop the source from data.sources.")
    what = "dropped" if long_clips == "drop" else "cropped"
    level = logging.WARNING if long else logging.INFO
    log.log(level, "%s: %d of %s (%.1f %%) are longer than data.max_frames=%d and are %s "
            "(data.long_clips=%s); lengths %s.", corpus.label, long, read,
            100 * long / len(lengths), max_frames, what, long_clips, span)


def make_loader(data_cfg: Any, split: str, *, train: bool, seed: int,
                mesh: jax.sharding.Mesh | None = None, num_shards: int | None = None,
                source: int | None = None) -> Loader:
    """The input pipeline over every configured source (see the module docstring), or over
    `data.sources[source]` alone (per-source evaluation).

    `split`: TRAIN ("train") reads each source's training split (the one it names, else
    data.split), EVAL ("validation") each source's evaluation split (its `@SPLIT`, else
    data.eval_split); any other name reads that split of every source. Evaluation reads each
    distinct dataset once. `num_shards` overrides `data.num_shards` (the trainer passes a
    resumed run's value). Training drops or crops clips longer than data.max_frames
    (data.long_clips), counted per source at open (a log line) and while reading
    (`Loader.clip_counts`)."""
    data_dir = os.fspath(_cfg(data_cfg, "data_dir"))
    sources = mixture(data_cfg)
    if source is not None and not 0 <= source < len(sources):
        raise IndexError(f"make_loader(source={source}): data.sources has {len(sources)} "
                         f"entries ({', '.join(s.spec for s in sources)}).")
    chosen = sources if source is None else [sources[source]]
    if not train:  # LRS3's pretrain and train entries share one validation split
        chosen = distinct(chosen, split)
    frame_buckets = tuple(sorted(int(b) for b in _cfg(data_cfg, "frame_buckets")))
    max_frames = int(_cfg(data_cfg, "max_frames") or frame_buckets[-1])
    long_clips = str(_cfg(data_cfg, "long_clips"))
    if long_clips not in LONG_CLIPS:
        raise ValueError(f"data.long_clips={long_clips!r}: expected one of {LONG_CLIPS}.")
    units, unit_vocab = _unit_settings(data_cfg)
    crop = int(_cfg(data_cfg, "crop"))
    num_workers = int(_cfg(data_cfg, "num_workers"))

    proc = process_shard()
    num_shards = int(num_shards or _cfg(data_cfg, "num_shards") or proc.shard_count)
    shards = local_shards(num_shards, proc.shard_index, proc.shard_count)
    global_batch = int(_cfg(data_cfg, "batch_size"))
    if global_batch % num_shards:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the number of data "
                         f"shards ({num_shards}; by default one per JAX process).")
    if mesh is not None and global_batch % mesh.devices.size:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the number of mesh "
                         f"devices {dict(mesh.shape)} (the batch is split over them).")
    shard_batch = global_batch // num_shards

    opened = [_open(src, split, data_dir) for src in chosen]
    kinds = {corpus.label: "video" if corpus.with_video else "audio-only" for corpus in opened}
    if len(set(kinds.values())) != 1:
        raise ValueError(f"data.sources mixes video and audio-only configs {kinds}; a loader "
                         "yields one kind of batch.")
    with_video = opened[0].with_video
    _check_languages(opened, tuple(_cfg(data_cfg, "languages")), _unit_settings(data_cfg)[0])
    for corpus in opened:
        if units and len(corpus.data):
            check_unit_ids(corpus.data[0], units, unit_vocab, corpus.label)
        if train:
            _probe_lengths(corpus, max_frames, long_clips, units, unit_vocab, seed)
    labels = tuple(s.label(split) for s in sources)
    collate = Collate(batch_size=shard_batch, with_video=with_video, frame_buckets=frame_buckets,
                      token_bucket=int(_cfg(data_cfg, "token_bucket")),
                      text_bucket=int(_cfg(data_cfg, "text_bucket")), crop=crop)
    read = grain.ReadOptions(num_threads=int(_cfg(data_cfg, "read_threads")),
                             prefetch_buffer_size=max(16, 2 * shard_batch))
    # Every shard runs the same number of eval steps: shard 0 is the largest.
    largest = sum(shard_range(len(corpus.data), 0, num_shards)[1] for corpus in opened)
    num_batches = None if train else -(-largest // shard_batch)

    datasets = []
    for shard_index in shards:
        transform = ClipTransform(
                data_dir=data_dir, with_video=with_video, train=train, seed=int(seed),
                process_index=shard_index, crop=crop, hflip=bool(_cfg(data_cfg, "hflip")),
                time_masks=int(_cfg(data_cfg, "time_masks")),
                time_mask_frames=int(_cfg(data_cfg, "time_mask_frames")),
                time_mask_per_second=float(_cfg(data_cfg, "time_mask_per_second")),
                max_frames=max_frames,
                tokenize=bool(_cfg(data_cfg, "tokenize")),
                downsample=int(_cfg(data_cfg, "downsample")), long_clips=long_clips,
                units=units, unit_vocab=unit_vocab, sources=labels)
        if transform.tokenize and not datasets:  # fail now, not inside a worker
            for corpus in opened:
                if corpus.language:
                    transform.tokenizer(corpus.language)
        parts = []
        for corpus in opened:
            shard = slice(*shard_range(len(corpus.data), shard_index, num_shards))
            clips = grain.MapDataset.source(corpus.data)[shard].map(_Tag(corpus.source.index))
            parts.append((corpus, clips))
        if train:
            dataset = _train_dataset(parts, transform, collate, read, shard_batch, seed,
                                     len(sources), max_frames, shard_index, num_shards)
        else:
            dataset = _eval_dataset([ds for _, ds in parts], transform, collate, read,
                                    shard_batch, num_batches)
        if num_workers > 0:
            _mark_flags_parsed()
            dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
        datasets.append(dataset)
    return Loader(datasets, train=train, num_batches=num_batches, shards=shards,
                  num_shards=num_shards,
                  labels={corpus.source.index: corpus.label for corpus in opened})


@dataclasses.dataclass(frozen=True)
class _Tag:
    """Adds the example's source index (its entry in data.sources)."""

    index: int

    def __call__(self, ex: dict[str, Any]) -> dict[str, Any]:
        return {**ex, SOURCE_KEY: self.index}


def _train_dataset(parts: list, transform: ClipTransform, collate: Collate,
                   read: grain.ReadOptions, batch: int, seed: int, num_sources: int,
                   max_frames: int, shard_index: int, num_shards: int) -> grain.IterDataset:
    """One shard's endless stream: per source shuffle + repeat, weighted mix, batches of the
    clips that fit (the others counted)."""
    streams, sizes = [], {}
    for corpus, ds in parts:
        if len(ds) == 0:
            raise ValueError(f"{corpus.label} has no examples for data shard {shard_index} of "
                             f"{num_shards} in {transform.data_dir}.")
        index = corpus.source.index
        sizes[index] = len(ds)
        streams.append(ds.shuffle(seed=(int(seed) * 1_000_003 + index) % 2**32).repeat())
    mixed = (grain.MapDataset.mix(streams, [corpus.source.weight for corpus, _ in parts])
             if len(streams) > 1 else streams[0])
    clips = mixed.map_with_index(transform).to_iter_dataset(read)
    return _FitBatches(clips, batch=batch, collate=collate, num_sources=num_sources,
                       sizes=sizes, labels=transform.sources, max_frames=max_frames)


class _FitBatches(grain.IterDataset):
    """Batches of the clips that the transform kept; the dropped ones are counted per source
    (the batch's COUNTS_KEY, summed by the Loader), and a source whose every clip in this shard
    is dropped stops the stream with an error instead of spinning forever."""

    def __init__(self, parent: grain.IterDataset, *, batch: int, collate: Collate,
                 num_sources: int, sizes: dict[int, int], labels: Sequence[str],
                 max_frames: int):
        super().__init__(parent)
        self.batch, self.collate, self.num_sources = batch, collate, num_sources
        self.sizes, self.labels, self.max_frames = sizes, tuple(labels), max_frames

    def __iter__(self) -> _FitBatchesIterator:
        return _FitBatchesIterator(self._parent.__iter__(), self)


class _FitBatchesIterator(grain.DatasetIterator):
    def __init__(self, parent: grain.DatasetIterator, spec: _FitBatches):
        super().__init__(parent)
        self._spec = spec
        # Per source: (clips dropped in a row, shortest, longest) since its last kept clip.
        self._dropped_run: dict[int, tuple[int, int, int]] = {}

    def __next__(self) -> dict[str, np.ndarray]:
        spec = self._spec
        counts = np.zeros((spec.num_sources, len(COUNTS)), np.int64)
        clips = []
        while len(clips) < spec.batch:
            clip = next(self._parent)
            index = int(clip[SOURCE_KEY])
            counts[index, COUNTS.index("read")] += 1
            if "dropped" in clip:
                counts[index, COUNTS.index("dropped")] += 1
                self._note_dropped(index, int(clip["dropped"]))
                continue
            self._dropped_run.pop(index, None)
            counts[index, COUNTS.index("cropped")] += bool(clip["cropped"])
            clips.append(clip)
        batch = spec.collate(clips)
        batch[COUNTS_KEY] = counts
        return batch

    def _note_dropped(self, index: int, frames: int) -> None:
        run, shortest, longest = self._dropped_run.get(index, (0, frames, frames))
        run, shortest, longest = run + 1, min(shortest, frames), max(longest, frames)
        self._dropped_run[index] = (run, shortest, longest)
        size = self._spec.sizes[index]
        if run >= 2 * size:  # a whole epoch of the source's shard lies in the run
            raise ValueError(
                    f"data.max_frames={self._spec.max_frames}: every clip of "
                    f"{self._spec.labels[index]} in this data shard ({size} clips, "
                    f"{shortest}-{longest} frames) is longer, so training reads nothing from "
                    f"it. Raise data.max_frames to at least {shortest}, set "
                    "data.long_clips=crop, or drop the source from data.sources.")

    def get_state(self) -> Any:
        return self._parent.get_state()

    def set_state(self, state: Any) -> None:
        self._parent.set_state(state)


def _eval_dataset(parts: list, transform: ClipTransform, collate: Collate,
                  read: grain.ReadOptions, batch: int, num_batches: int) -> grain.IterDataset:
    """One shard's single pass, padded with empty batches to `num_batches`."""
    present = [ds for ds in parts if len(ds)]
    batched = []
    if present:
        clips = grain.MapDataset.concatenate(present) if len(present) > 1 else present[0]
        batched.append(clips.map_with_index(transform).batch(
                batch, drop_remainder=False, batch_fn=collate))
    missing = num_batches - sum(len(b) for b in batched)
    if missing or not batched:
        batched.append(grain.MapDataset.range(missing).map(_EmptyBatch(collate)))
    eval_ds = grain.MapDataset.concatenate(batched) if len(batched) > 1 else batched[0]
    return eval_ds.to_iter_dataset(read)


def _mark_flags_parsed() -> None:
    """grain's worker processes read absl flags; scripts not run through absl.app parse none."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()

