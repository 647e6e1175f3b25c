"""Lip Reading in the Wild (LRW): 500 English words, one 29-frame (1.16 s) clip per utterance.

Layout: `lipread_mp4/<WORD>/{train,val,test}/<WORD>_<NNNNN>.{mp4,txt}`. The word is the label:
`label` is its index among the word folders in alphabetical order (the usual LRW class order)
and `text` is the word. Splits: `train`, `validation` (val), `test`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from data_builders import manual_corpus as mc

NUM_WORDS = 500
_SPLITS = {"train": "train", "validation": "val", "test": "test"}


class Builder(mc.ManualCorpusBuilder):
    """LRW word clips as 96x96 mouth crops with a 500-way word label."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request LRW at https://www.robots.ox.ac.uk/~vgg/data/lip_reading/lrw1.html (agreement
    required), download and extract `lrw-v1` so that `manual_dir/lipread_mp4/ABOUT/train/
    ABOUT_00001.mp4` exists.
    """
    BUILDER_CONFIGS = [
            mc.ManualCorpusConfig(name="en", language="en", with_video=True,
                                  description="Word clips, video + audio, word label."),
    ]

    def extra_features(self) -> dict[str, Any]:
        return {"label": tfds.features.Tensor(shape=(), dtype=np.int32)}

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        return mc.find_root(manual_dir, ("lipread_mp4", "lrw/lipread_mp4", ""),
                            [f"*/{s}" for s in _SPLITS.values()],
                            "LRW word folders <WORD>/train, <WORD>/val or <WORD>/test")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        words = sorted(p.name for p in root.iterdir()
                       if p.is_dir() and any((p / s).exists() for s in _SPLITS.values()))
        if len(words) > NUM_WORDS:
            raise mc.LayoutError(f"{root}: expected at most {NUM_WORDS} word folders, found "
                                 f"{len(words)}.")
        splits: dict[str, list[mc.Clip]] = {split: [] for split in _SPLITS}
        for label, word in enumerate(words):
            for split, name in _SPLITS.items():
                folder = root / word / name
                if not folder.exists():
                    continue
                stems = sorted({p.stem for p in folder.iterdir() if p.suffix in (".mp4", ".txt")})
                splits[split] += [mc.Clip(id=f"{word}/{name}/{stem}", speaker="",
                                          path=folder / f"{stem}.mp4", text=word,
                                          extra=(("label", np.int32(label)),))
                                  for stem in stems]
        return {split: clips for split, clips in splits.items() if clips}
