"""The grain input pipeline: built corpus splits -> padded, masked host-local numpy batches.

The stream is cut into `data.num_shards` data shards (default: one per JAX process), fixed for
the run whatever the process count: shard s of every source is its contiguous slice s -> seeded
shuffle -> repeat (training); sources are mixed with configured weights; each clip is decoded,
augmented (seeded by shard, not process) and tokenised; clips are collated into
`batch_size // num_shards` rows padded to length buckets. A process reads `num_shards //
process_count` shards and stacks their rows, so 1 process with 2 shards yields the very global
batches that 2 processes yield together, and a checkpoint (one iterator state per shard) resumes
on either.
Training streams forever; evaluation is one pass in which every example appears exactly once, the
last batch padded with rows whose `valid` is False. The loader is a grain `DatasetIterator`, so its
state is checkpointed with the model and a restored loader continues the identical stream.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import grain
import jax
import numpy as np

from lipjax.data import sharding
from lipjax.data import source as source_lib
from lipjax.data.transforms import ClipTransform, Collate

DEFAULTS: dict[str, Any] = {
        "builder": "synthetic_lips",
        "frame_buckets": (50, 75, 100, 150),
        "max_frames": None,  # None: the largest frame bucket
        "token_bucket": 16,  # unit/phoneme id sequences pad to multiples of this
        "text_bucket": 16,  # SentencePiece token sequences pad to multiples of this
        "crop": 88,
        "hflip": True,
        "time_mask_frames": 0,
        "time_masks": 0,
        "tokenizer_vocab": 1000,
        "num_workers": 0,
        "read_threads": 4,  # threads decoding clips inside each process
        "tokenize": True,  # False: no SentencePiece model needed (`tokens` are empty)
        "downsample": 1,  # >1: average d x d pixel blocks first (crop is then in those pixels)
        "num_shards": 0,  # data shards of the stream; 0: one per JAX process
}


def _cfg(data_cfg: Any, key: str) -> Any:
    value = data_cfg.get(key, None) if hasattr(data_cfg, "get") else getattr(data_cfg, key, None)
    if value is None:
        if key not in DEFAULTS:
            raise KeyError(f"data config is missing the key data.{key}.")
        return DEFAULTS[key]
    return value


def parse_sources(sources: Any) -> list[tuple[str, float]]:
    """data.sources: [(config, weight), ...] or [config, ...] -> [(config, weight), ...]."""
    if isinstance(sources, str):
        sources = [sources]
    parsed = []
    for entry in sources or ():
        name, weight = (entry, 1.0) if isinstance(entry, str) else (entry[0], float(entry[1]))
        if weight <= 0:
            raise ValueError(f"data.sources weight of {name!r} must be > 0; found {weight}.")
        parsed.append((str(name), weight))
    if not parsed:
        raise ValueError("data.sources is empty; expected e.g. [('en_video', 1.0)].")
    return parsed


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
    iterating again after it ends starts a new pass.
    """

    def __init__(self, datasets: Sequence[grain.IterDataset], *, train: bool,
                 num_batches: int | None, shards: Sequence[int] = (0,), num_shards: int = 1):
        if len(datasets) != len(shards):
            raise ValueError(f"Loader: {len(datasets)} datasets for shards {list(shards)}")
        self._datasets = list(datasets)
        self.train = train
        self.num_batches = num_batches
        self.shards = tuple(int(s) for s in shards)
        self.num_shards = int(num_shards)
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
        if len(parts) == 1:
            return parts[0]
        dims = sharding.max_dims(parts)
        parts = [sharding.pad_to(p, dims) for p in parts]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

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


def make_loader(data_cfg: Any, split: str, *, train: bool, seed: int,
                mesh: jax.sharding.Mesh | None = None, num_shards: int | None = None) -> Loader:
    """The input pipeline for `split` of every configured source (see the module docstring).

    `num_shards` overrides `data.num_shards` (the trainer passes a resumed run's value)."""
    builder = _cfg(data_cfg, "builder")
    data_dir = os.fspath(_cfg(data_cfg, "data_dir"))
    sources = parse_sources(_cfg(data_cfg, "sources"))
    frame_buckets = tuple(sorted(int(b) for b in _cfg(data_cfg, "frame_buckets")))
    max_frames = int(_cfg(data_cfg, "max_frames") or frame_buckets[-1])
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

    opened = [(name, weight, source_lib.open_source(builder, name, split, data_dir))
              for name, weight in sources]
    kinds = {name: source_lib.has_video(builder, name, data_dir) for name, _ in sources}
    if len(set(kinds.values())) != 1:
        raise ValueError(f"data.sources mixes video and audio-only configs {kinds}; a loader "
                         "yields one kind of batch.")
    with_video = next(iter(kinds.values()))
    collate = Collate(batch_size=shard_batch, with_video=with_video, frame_buckets=frame_buckets,
                      token_bucket=int(_cfg(data_cfg, "token_bucket")),
                      text_bucket=int(_cfg(data_cfg, "text_bucket")), crop=crop)
    read = grain.ReadOptions(num_threads=int(_cfg(data_cfg, "read_threads")),
                             prefetch_buffer_size=max(16, 2 * shard_batch))
    # Every shard runs the same number of eval steps: shard 0 is the largest.
    largest = sum(shard_range(len(src), 0, num_shards)[1] for _, _, src in opened)
    num_batches = None if train else -(-largest // shard_batch)

    datasets = []
    for shard_index in shards:
        transform = ClipTransform(
                data_dir=data_dir, with_video=with_video, train=train, seed=int(seed),
                process_index=shard_index, crop=crop, hflip=bool(_cfg(data_cfg, "hflip")),
                time_masks=int(_cfg(data_cfg, "time_masks")),
                time_mask_frames=int(_cfg(data_cfg, "time_mask_frames")), max_frames=max_frames,
                tokenize=bool(_cfg(data_cfg, "tokenize")),
                downsample=int(_cfg(data_cfg, "downsample")))
        if transform.tokenize and not datasets:  # fail now, not inside a worker
            for _name, _, src in opened:
                if len(src):
                    transform.tokenizer(source_lib.as_str(src[0]["language"]))
        parts = [(name, weight, grain.MapDataset.source(src)[slice(
                *shard_range(len(src), shard_index, num_shards))])
                 for name, weight, src in opened]
        if train:
            dataset = _train_dataset(parts, transform, collate, read, shard_batch, seed,
                                     builder, split, data_dir, shard_index, num_shards)
        else:
            dataset = _eval_dataset(parts, transform, collate, read, shard_batch, num_batches)
        if num_workers > 0:
            _mark_flags_parsed()
            dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
        datasets.append(dataset)
    return Loader(datasets, train=train, num_batches=num_batches, shards=shards,
                  num_shards=num_shards)


def _train_dataset(parts: list, transform: ClipTransform, collate: Collate,
                   read: grain.ReadOptions, batch: int, seed: int, builder: str, split: str,
                   data_dir: str, shard_index: int, num_shards: int) -> grain.IterDataset:
    """One shard's endless stream: per source shuffle + repeat, weighted mix, batches."""
    streams = []
    for k, (name, _, ds) in enumerate(parts):
        if len(ds) == 0:
            raise ValueError(f"{builder}/{name} split {split!r} has no examples for data shard "
                             f"{shard_index} of {num_shards} in {data_dir}.")
        streams.append(ds.shuffle(seed=(int(seed) * 1_000_003 + k) % 2**32).repeat())
    mixed = (grain.MapDataset.mix(streams, [w for _, w, _ in parts]) if len(streams) > 1
             else streams[0])
    return (mixed.map_with_index(transform).to_iter_dataset(read)
            .batch(batch, drop_remainder=True, batch_fn=collate))


def _eval_dataset(parts: list, transform: ClipTransform, collate: Collate,
                  read: grain.ReadOptions, batch: int, num_batches: int) -> grain.IterDataset:
    """One shard's single pass, padded with empty batches to `num_batches`."""
    present = [ds for _, _, ds in parts if len(ds)]
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

