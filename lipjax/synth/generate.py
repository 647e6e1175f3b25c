"""Generating synthetic clips: text -> speech with phone timings -> visemes -> frames.

Every clip is a pure function of (seed, language, split, index), so a corpus is reproducible byte
for byte whatever the number of worker processes; workers (one per core) each own an espeak-ng
instance and return finished examples in order. Phones outside the shared inventory are counted
and reported per split, never dropped silently.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import multiprocessing
import os
from collections.abc import Iterator

import numpy as np

from lipjax import languages
from lipjax.schema import FPS, SAMPLES_PER_FRAME
from lipjax.synth import render, speakers, speech, text
from lipjax.units import phonemes

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
CODEBOOK_LANGUAGES = ("en", "es", "fr", "it", "pt")
_MIN_SECONDS, _MAX_SECONDS = 1.0, 3.0
_ATTEMPTS = 12


@dataclasses.dataclass(frozen=True)
class ClipConfig:
    """What to generate for one language and modality (shared by every clip of a build)."""

    language: str
    video: bool
    seed: int = 0
    min_words: int = 3
    max_words: int = 7
    top_words: int = 2000


@dataclasses.dataclass
class Clip:
    """One generated example (`features` in the builder's schema) and its out-of-inventory
    phones, keyed by where they came from ("text" = phonemizer, "timing" = synthesizer)."""

    key: str
    features: dict
    unknown: dict[str, collections.Counter]


def clip_rng(config: ClipConfig, split: str, index: int) -> np.random.Generator:
    """The clip's own random stream: independent of every other clip and of the worker count."""
    return np.random.default_rng(
            [config.seed, languages.index(config.language), SPLITS.index(split), index,
             int(config.video)])


def speak(config: ClipConfig, rng: np.random.Generator, speaker: speakers.Speaker
          ) -> tuple[str, speech.Utterance]:
    """A sentence whose speech lasts 1-3 s (resampled, shorter if needed) and its speech."""
    max_words = config.max_words
    for _ in range(_ATTEMPTS):
        sentence = text.sample_sentence(config.language, rng, config.min_words, max_words,
                                        config.top_words)
        utterance = speech.synthesize(sentence, speaker.voice)
        if sentence and utterance.phones and _MIN_SECONDS <= utterance.duration <= _MAX_SECONDS:
            return sentence, utterance
        if utterance.duration > _MAX_SECONDS:
            max_words = max(config.min_words, max_words - 1)
    return sentence, utterance  # rare: keep the last draw rather than loop forever


def frame_phonemes(phones: list[speech.PhoneTiming], num_frames: int,
                   inventory: phonemes.Inventory) -> tuple[np.ndarray, collections.Counter]:
    """Inventory id of the phone sounding at each frame's centre (0 = silence/unknown)."""
    out = np.zeros(num_frames, np.int32)
    unknown: collections.Counter = collections.Counter()
    centers = (np.arange(num_frames) + 0.5) / FPS
    for phone in phones:
        inside = (centers >= phone.start) & (centers < phone.end)
        if phone.phone in inventory:
            out[inside] = inventory.id(phone.phone)
        else:
            unknown[phone.phone] += 1
    return out, unknown


def make_clip(config: ClipConfig, split: str, index: int,
              centroids: np.ndarray | None) -> Clip:
    """Generates clip `index` of `split`; `centroids` (K, D) give the acoustic units."""
    from lipjax.units import acoustic

    rng = clip_rng(config, split, index)
    pool = speakers.split_speakers(split)
    speaker_index = int(pool[int(rng.integers(len(pool)))])
    speaker = speakers.make_speaker(config.language, speaker_index, config.seed)
    sentence, utterance = speak(config, rng, speaker)
    phone_string = phonemes.phonemize([sentence], config.language)[0]
    inventory = phonemes.load_inventory()
    ids, unknown_text = inventory.encode(phonemes.split_phones(phone_string))
    num_frames = -(-len(utterance.audio) // SAMPLES_PER_FRAME)
    units = np.zeros(0, np.int32)
    if centroids is not None:
        units = acoustic.assign(acoustic.features(utterance.audio), centroids)
    key = f"{config.language}_{split}_{index:06d}"
    features = {
            "id": key,
            "language": config.language,
            "speaker": speaker.id,
            "text": sentence,
            "phonemes": phone_string,
            "phoneme_ids": ids,
            "units": units.astype(np.int32),
            "audio": utterance.audio,
    }
    unknown = {"text": unknown_text}
    # The phone at each 25 Hz frame, in video and audio-text configs alike: the frame-rate phone
    # sequence an audio-only LMDecoder reads is then what a lip reader's frames give it.
    features["frame_phonemes"], unknown["timing"] = frame_phonemes(utterance.phones, num_frames,
                                                                   inventory)
    if config.video:
        params = render.trajectory(utterance.phones, num_frames)
        features["video"] = render.render(params, speaker, rng)
    return Clip(key, features, unknown)


_WORKER_CENTROIDS: np.ndarray | None = None


def _init_worker(centroids: np.ndarray | None) -> None:
    global _WORKER_CENTROIDS
    _WORKER_CENTROIDS = centroids


def _worker(job: tuple[ClipConfig, str, int]) -> Clip:
    config, split, index = job
    return make_clip(config, split, index, _WORKER_CENTROIDS)


def generate(config: ClipConfig, split: str, num_clips: int, centroids: np.ndarray | None,
             num_workers: int | None = None, progress: bool = True) -> Iterator[Clip]:
    """Yields clips 0..num_clips-1 of `split` in order, generated on `num_workers` processes
    (default: all cores; small jobs run in-process), and logs the out-of-inventory phones."""
    from tqdm import tqdm

    workers = num_workers if num_workers is not None else (os.cpu_count() or 1)
    workers = max(1, min(workers, num_clips // 8))
    jobs = [(config, split, i) for i in range(num_clips)]
    unknown: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    name = f"synthetic_lips {config.language}_{'video' if config.video else 'audio'} {split}"
    bar = tqdm(total=num_clips, desc=name, disable=not progress, leave=False)
    if workers == 1:
        clips = (make_clip(config, split, i, centroids) for i in range(num_clips))
        yield from _count(clips, unknown, bar)
    else:
        # fork: workers start in milliseconds and need no `__main__` guard in the caller. A
        # forked child's copy of libespeak-ng is idle and consistent (synthesis is synchronous).
        context = multiprocessing.get_context("fork")
        with context.Pool(workers, _init_worker, (centroids,)) as pool:
            yield from _count(pool.imap(_worker, jobs, chunksize=4), unknown, bar)
    bar.close()
    report = {source: dict(counts.most_common()) for source, counts in unknown.items() if counts}
    log.info("%s: %d clips; out-of-inventory phones: %s", name, num_clips, report or "none")
    last_report[(config.language, config.video, split)] = report


# (language, video, split) -> {source: {phone: count}} of the latest generate() per split.
last_report: dict[tuple[str, bool, str], dict[str, dict[str, int]]] = {}


def _count(clips, unknown: dict[str, collections.Counter], bar) -> Iterator[Clip]:
    for clip in clips:
        for source, counts in clip.unknown.items():
            unknown[source].update(counts)
        bar.update(1)
        yield clip


def codebook_sample(seed: int = 12345, per_language: int = 40) -> Iterator[np.ndarray]:
    """Audio of a fixed set of clips across all languages, for fitting the shared unit codebook:
    independent of any build's sizes or seed, so every build shares the same units."""
    for lang in CODEBOOK_LANGUAGES:
        for index in range(per_language):
            rng = np.random.default_rng([seed, languages.index(lang), index])
            speaker = speakers.make_speaker(lang, int(rng.integers(8)), 0)
            config = ClipConfig(lang, video=False)
            yield speak(config, rng, speaker)[1].audio
