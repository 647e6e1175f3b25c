"""The units of a real corpus's clips: shared-inventory phonemes of the transcripts, and acoustic
units from one seeded k-means codebook per corpus, stored with the data.

Stage 1 (visual encoder predicts units per frame) and stage 2 (LMDecoder reads units) must see the
same unit ids, so the codebook is a file next to the prepared data,
`{data_dir}/units/<builder>_<config>_k<K>.npy`, written once from a sample of the train split and
reused by every later build (or by another corpus through `units_codebook`).
"""

from __future__ import annotations

import collections
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import numpy as np
from etils import epath

from lipjax import languages
from lipjax.units import acoustic, phonemes

log = logging.getLogger(__name__)

T = TypeVar("T")

# Feature rows kept for k-means: enough for K up to ~1000, small enough to fit in seconds-minutes.
MAX_FIT_FRAMES = 200_000


def phoneme_units(texts: list[str], language: str,
                  markers: collections.Counter | None = None
                  ) -> list[tuple[str, np.ndarray, collections.Counter]]:
    """(phonemes string, int32 ids in the shared inventory, phones the inventory lacks) per text.

    Empty for an empty text and for languages the registry does not know (no espeak voice).
    espeak-ng's unknown markers (`??`) are never phones; they are added to `markers` if given.
    """
    known = language in languages.codes()
    todo = [t for t in texts if t and known]
    strings, dropped = phonemes.phonemize_counted(todo, language) if todo else ([], None)
    if markers is not None and dropped:
        markers.update(dropped)
    done = iter(strings)
    out = []
    for text in texts:
        phone_str = next(done) if text and known else ""
        ids, unknown = phonemes.load_inventory().encode(phonemes.split_phones(phone_str))
        out.append((phone_str, np.asarray(ids, np.int32), unknown))
    return out


def codebook_name(builder: str, config: str, k: int) -> str:
    """The file stem of a corpus codebook: `<builder>_<config>_k<K>`."""
    return f"{builder}_{config}_k{k}"


def codebook_path(data_dir: str | os.PathLike[str], name: str) -> epath.Path:
    """Where codebook `name` lives: `{data_dir}/units/<name>.npy`."""
    return epath.Path(data_dir) / "units" / f"{name}.npy"


def sample(items: Sequence[T], n: int, seed: int) -> list[T]:
    """A seeded subset of `n` items in their original order (all of them if fewer)."""
    if n <= 0 or n >= len(items):
        return list(items)
    keep = np.sort(np.random.default_rng(seed).choice(len(items), size=n, replace=False))
    return [items[i] for i in keep]


def fit_codebook(audio_clips: Iterable[np.ndarray], k: int, seed: int, kind: str = "mfcc",
                 max_frames: int = MAX_FIT_FRAMES) -> np.ndarray:
    """k-means centroids float32 (k, D) of the 25 Hz features of int16 16 kHz clips."""
    feats = [acoustic.features(a, kind=kind) for a in audio_clips]
    x = np.concatenate(feats) if feats else np.zeros((0, acoustic.feature_dim(kind)), np.float32)
    if len(x) < k:
        raise ValueError(f"Fitting {k} acoustic units needs at least {k} audio frames (40 ms); "
                         f"the sample has {len(x)} frames from {len(feats)} clips. "
                         "Lower units_k or raise units_sample.")
    if len(x) > max_frames:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), max_frames, replace=False))]
    return acoustic.fit_kmeans(x, k, seed)


class CorpusUnits:
    """A loaded codebook: call it on a clip's audio to get one unit per 25 Hz frame."""

    def __init__(self, centroids: np.ndarray, kind: str = "mfcc", name: str = "") -> None:
        self.centroids = np.asarray(centroids, np.float32)
        self.kind = kind
        self.name = name

    @property
    def k(self) -> int:
        return len(self.centroids)

    def __call__(self, audio_int16: np.ndarray) -> np.ndarray:
        """int32 (T,) units, T = ceil(len(audio) / 640) (raw, repeats kept)."""
        return acoustic.assign(acoustic.features(audio_int16, kind=self.kind), self.centroids)


def load_units(data_dir: str | os.PathLike[str], name: str, kind: str = "mfcc") -> CorpusUnits:
    """The saved codebook `name`; the error says how it gets made when it is missing."""
    path = codebook_path(data_dir, name)
    if not path.exists():
        raise FileNotFoundError(
                f"Units codebook {path} does not exist. Build the corpus it comes from with "
                "units_k > 0 first (it writes `{data_dir}/units/<builder>_<config>_k<K>.npy`).")
    return CorpusUnits(acoustic.load_codebook(path), kind, name)


def ensure_units(data_dir: str | os.PathLike[str], name: str, k: int,
                 sample_audio: Callable[[], Iterable[np.ndarray]], seed: int = 0,
                 kind: str = "mfcc") -> CorpusUnits:
    """Loads codebook `name`, or fits it on `sample_audio()` and saves it first.

    An existing file is reused (rebuilding a split keeps the same unit ids); one of a different
    size is an error rather than a silent mismatch.
    """
    path = codebook_path(data_dir, name)
    if path.exists():
        units = load_units(data_dir, name, kind)
        if units.k != k:
            raise ValueError(f"Codebook {path} has {units.k} units but units_k={k}; delete it or "
                             "set units_k to match.")
        log.info("Reusing acoustic units codebook %s", path)
        return units
    centroids = fit_codebook(sample_audio(), k, seed, kind)
    acoustic.save_codebook(path, centroids)
    log.info("Fitted %d acoustic units on a sample; saved %s", k, path)
    return CorpusUnits(centroids, kind, name)
