"""The grain input pipeline: built corpus splits -> padded, masked host-local numpy batches.

Per source (builder config): this process's contiguous shard -> seeded shuffle -> repeat
(training) ; sources are mixed with configured weights; each clip is decoded, augmented and
tokenised; clips are collated into `batch_size // process_count` rows padded to length buckets.
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

from lipjax.data import source as source_lib
from lipjax.data.transforms import ClipTransform, Collate

DEFAULTS: dict[str, Any] = {
        "builder": "synthetic_lips",
        "frame_buckets": (50, 75, 100, 150),
        "max_frames": None,  # None: the largest frame bucket
        "token_bucket": 16,
        "crop": 88,
        "hflip": True,
        "time_mask_frames": 0,
        "time_masks": 0,
        "tokenizer_vocab": 1000,
        "num_workers": 0,
        "read_threads": 4,  # threads decoding clips inside each process
        "tokenize": True,  # False: no SentencePiece model needed (`tokens` are empty)
        "downsample": 1,  # >1: average d x d pixel blocks first (crop is then in those pixels)
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

    Training: iterating continues the endless stream. Evaluation: a finite pass of `len(loader)`
    batches (the same count on every process); iterating again after it ends starts a new pass.
    """

    def __init__(self, dataset: grain.IterDataset, *, train: bool, batch_size: int,
                 with_video: bool, num_batches: int | None):
        self._dataset = dataset
        self.train = train
        self.batch_size = batch_size
        self.with_video = with_video
        self.num_batches = num_batches
        self._started = False
        self._exhausted = False
        super().__init__(iter(dataset))

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("A training loader is endless; it has no length.")
        return self.num_batches

    def __iter__(self) -> Loader:
        if not self.train and self._started:
            self._parent.close()
            self._started = self._exhausted = False
            super().__init__(iter(self._dataset))
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        self._started = True
        try:
            return next(self._parent)
        except StopIteration:
            self._exhausted = True
            raise

    def get_state(self) -> dict[str, Any]:
        return self._parent.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self._started = True
        self._parent.set_state(state)


def process_shard() -> grain.sharding.ShardOptions:
    """Which slice of every split this JAX process reads."""
    return grain.sharding.ShardByJaxProcess()


def make_loader(data_cfg: Any, split: str, *, train: bool, seed: int,
                mesh: jax.sharding.Mesh | None = None) -> Loader:
    """The input pipeline for `split` of every configured source (see the module docstring)."""
    builder = _cfg(data_cfg, "builder")
    data_dir = os.fspath(_cfg(data_cfg, "data_dir"))
    sources = parse_sources(_cfg(data_cfg, "sources"))
    frame_buckets = tuple(sorted(int(b) for b in _cfg(data_cfg, "frame_buckets")))
    max_frames = int(_cfg(data_cfg, "max_frames") or frame_buckets[-1])
    crop = int(_cfg(data_cfg, "crop"))
    num_workers = int(_cfg(data_cfg, "num_workers"))

    shard = process_shard()
    global_batch = int(_cfg(data_cfg, "batch_size"))
    if global_batch % shard.shard_count:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the number of JAX "
                         f"processes ({shard.shard_count}).")
    if mesh is not None and global_batch % mesh.devices.size:
        raise ValueError(f"data.batch_size={global_batch} must be divisible by the number of mesh "
                         f"devices {dict(mesh.shape)} (the batch is split over them).")
    local_batch = global_batch // shard.shard_count

    opened = [(name, weight, source_lib.open_source(builder, name, split, data_dir))
              for name, weight in sources]
    kinds = {name: source_lib.has_video(builder, name, data_dir) for name, _ in sources}
    if len(set(kinds.values())) != 1:
        raise ValueError(f"data.sources mixes video and audio-only configs {kinds}; a loader "
                         "yields one kind of batch.")
    with_video = next(iter(kinds.values()))

    transform = ClipTransform(
            data_dir=data_dir, with_video=with_video, train=train, seed=int(seed),
            process_index=shard.shard_index, crop=crop, hflip=bool(_cfg(data_cfg, "hflip")),
            time_masks=int(_cfg(data_cfg, "time_masks")),
            time_mask_frames=int(_cfg(data_cfg, "time_mask_frames")), max_frames=max_frames,
            tokenize=bool(_cfg(data_cfg, "tokenize")),
            downsample=int(_cfg(data_cfg, "downsample")))
    collate = Collate(batch_size=local_batch, with_video=with_video, frame_buckets=frame_buckets,
                      token_bucket=int(_cfg(data_cfg, "token_bucket")), crop=crop)
    if transform.tokenize:  # fail now, not inside a worker, if a tokenizer is missing
        for _name, _, src in opened:
            if len(src):
                transform.tokenizer(source_lib.as_str(src[0]["language"]))
    read = grain.ReadOptions(num_threads=int(_cfg(data_cfg, "read_threads")),
                             prefetch_buffer_size=max(16, 2 * local_batch))
    shards = [(name, weight, grain.MapDataset.source(src)[slice(
            *shard_range(len(src), shard.shard_index, shard.shard_count))])
              for name, weight, src in opened]

    if train:
        parts = []
        for k, (name, _, ds) in enumerate(shards):
            if len(ds) == 0:
                raise ValueError(f"{builder}/{name} split {split!r} has no examples for process "
                                 f"{shard.shard_index} of {shard.shard_count} in {data_dir}.")
            parts.append(ds.shuffle(seed=(int(seed) * 1_000_003 + k) % 2**32).repeat())
        mixed = (grain.MapDataset.mix(parts, [w for _, w, _ in shards]) if len(parts) > 1
                 else parts[0])
        dataset = (mixed.map_with_index(transform).to_iter_dataset(read)
                   .batch(local_batch, drop_remainder=True, batch_fn=collate))
        num_batches = None
    else:
        parts = [ds for _, _, ds in shards if len(ds)]
        # Every process runs the same number of steps: the first shard is the largest.
        largest = sum(shard_range(len(src), 0, shard.shard_count)[1] for _, _, src in opened)
        num_batches = -(-largest // local_batch)
        batched = []
        if parts:
            clips = grain.MapDataset.concatenate(parts) if len(parts) > 1 else parts[0]
            batched.append(clips.map_with_index(transform).batch(
                    local_batch, drop_remainder=False, batch_fn=collate))
        missing = num_batches - sum(len(b) for b in batched)
        if missing or not batched:
            batched.append(grain.MapDataset.range(missing).map(_EmptyBatch(collate)))
        eval_ds = grain.MapDataset.concatenate(batched) if len(batched) > 1 else batched[0]
        dataset = eval_ds.to_iter_dataset(read)
    if num_workers > 0:
        _mark_flags_parsed()
        dataset = dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    return Loader(dataset, train=train, batch_size=local_batch, with_video=with_video,
                  num_batches=num_batches)


def _mark_flags_parsed() -> None:
    """grain's worker processes read absl flags; scripts not run through absl.app parse none."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def source_names(data_cfg: Any) -> Sequence[str]:
    """The builder config names a data config reads, in order."""
    return [name for name, _ in parse_sources(_cfg(data_cfg, "sources"))]
