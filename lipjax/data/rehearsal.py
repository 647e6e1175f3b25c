"""Rehearsal: stage-2 audio-text batches riding along with stage 3's video batches.

Fine-tuning an LMDecoder on a low-resource language's few video clips can make it forget the
language it learnt from plentiful audio-text data (on the synthetic corpus validation WER rose
from step 0; experiments/results/README.md). With `config.rehearsal.weight > 0` each training
batch of the video loader also carries one batch of the LMDecoders' own audio-text data
(`config.rehearsal.data`, a stage-2 data block), its keys prefixed with `PREFIX`, and the
stage-3 loss adds the stage-2 loss on it (lipjax/tasks/finetune.py).

`RehearsalLoader` pairs the two loaders behind the `Loader` interface the trainer and the
checkpoint handler use, so both streams resume where they stopped: each data shard's saved
state holds the state of both.
"""

from __future__ import annotations

from typing import Any

import jax
import ml_collections
import numpy as np

from lipjax.data.pipeline import Loader, make_loader

PREFIX = "rehearsal/"


def enabled(config: ml_collections.ConfigDict) -> bool:
    block = config.get("rehearsal", None)
    return block is not None and float(block.get("weight", 0.0)) > 0


def split_batch(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the video batch, the rehearsal batch without its prefix; {} when there is none)."""
    main = {k: v for k, v in batch.items() if not k.startswith(PREFIX)}
    side = {k[len(PREFIX):]: v for k, v in batch.items() if k.startswith(PREFIX)}
    return main, side


class RehearsalLoader:
    """Batches of `main` with the next batch of `side` under `PREFIX` keys; the state of each
    data shard is both loaders' states. Both must be training loaders over the same shards."""

    def __init__(self, main: Loader, side: Loader) -> None:
        if main.shards != side.shards or main.num_shards != side.num_shards:
            raise ValueError(f"rehearsal loader: data shards {side.shards} of "
                             f"{side.num_shards} differ from the video loader's {main.shards} "
                             f"of {main.num_shards}")
        self.main, self.side = main, side
        self.shards, self.num_shards = main.shards, main.num_shards

    def __iter__(self) -> RehearsalLoader:
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        batch = next(self.main)
        batch.update({PREFIX + k: v for k, v in next(self.side).items()})
        return batch

    def clip_counts(self) -> dict[str, dict[str, int]]:
        return {**self.side.clip_counts(), **self.main.clip_counts()}

    def shard_states(self) -> dict[int, Any]:
        side = self.side.shard_states()
        return {s: {"main": st, "rehearsal": side[s]}
                for s, st in self.main.shard_states().items()}

    def set_shard_states(self, states: dict[int, Any]) -> None:
        missing = [s for s in self.shards if "rehearsal" not in states[s]]
        if missing:
            raise ValueError(f"rehearsal loader: the checkpoint's input state of data shards "
                             f"{missing} has no rehearsal stream (was the run started without "
                             "config.rehearsal?)")
        self.main.set_shard_states({s: states[s]["main"] for s in self.shards})
        self.side.set_shard_states({s: states[s]["rehearsal"] for s in self.shards})

    def get_state(self) -> dict[str, Any]:
        return {"shards": {str(s): st for s, st in self.shard_states().items()}}

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_shard_states({int(s): st for s, st in state["shards"].items()})


def train_loader(config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None,
                 num_shards: int | None = None) -> Loader | RehearsalLoader:
    """The training loader of `config.data`, paired with `config.rehearsal.data`'s when
    rehearsal is on (same seed offset by one, same data shards)."""
    main = make_loader(config.data, "train", train=True, seed=config.seed, mesh=mesh,
                       num_shards=num_shards)
    if not enabled(config):
        return main
    side = make_loader(config.rehearsal.data, "train", train=True, seed=config.seed + 1,
                       mesh=mesh, num_shards=main.num_shards)
    return RehearsalLoader(main, side)
