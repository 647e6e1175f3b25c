"""Synthetic speakers: how each one looks and sounds.

A lip reader must generalise across faces, so each speaker draws its own lip geometry, skin and
lip tone, framing, lighting and camera noise, and its own espeak-ng voice variant, pitch and rate.

One pool serves every language: speaker `index` looks the same whatever language it speaks (only
the espeak-ng language voice changes), so a face says nothing about the language and a
language-ID head must read the lips. The pool is split by speaker: validation and test clips
come from speakers never seen in training (as in LRS3 and mTEDx), so scores measure lip reading,
not speaker memory. A speaker is a pure function of (seed, index).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from lipjax import languages
from lipjax.synth.speech import Voice

_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")


@dataclasses.dataclass(frozen=True)
class Speaker:
    """Appearance (pixels, grey levels) and voice of one synthetic speaker."""

    id: str
    voice: Voice
    center_x: float  # mouth centre in the 96x96 crop
    center_y: float
    half_width: float  # lip corner distance / 2 at rest
    max_opening: float  # inner lip gap at full opening
    upper_lip: float  # lip thicknesses
    lower_lip: float
    skin: float  # grey levels
    lip: float
    cavity: float
    teeth: float
    tongue: float
    light_angle: float  # direction and strength of a linear lighting gradient
    light_strength: float
    noise: float  # camera noise standard deviation (grey levels)
    jitter: float  # head motion amplitude (pixels)


# Speakers of each split, by index in the pool: disjoint, so evaluation speakers are unseen.
POOL = {"train": range(0, 40), "validation": range(40, 46), "test": range(46, 52)}


def split_speakers(split: str) -> range:
    """Pool indices of the speakers whose clips go to `split`."""
    if split not in POOL:
        raise ValueError(f"speaker pool: unknown split {split!r}; expected one of {sorted(POOL)}")
    return POOL[split]


def make_speaker(lang: str, index: int, seed: int = 0) -> Speaker:
    """Speaker `index` of the shared pool speaking `lang`: appearance and voice character are
    deterministic in (seed, index) alone; `lang` only picks the espeak-ng language voice."""
    rng = np.random.default_rng([seed, index, 7919])
    skin = float(rng.uniform(105, 195))
    voice = Voice(
            espeak_voice=languages.get(lang).espeak_voice,
            variant=str(rng.choice(_VARIANTS)),
            rate=int(rng.integers(150, 200)),
            pitch=int(rng.integers(30, 75)),
            pitch_range=int(rng.integers(30, 80)),
    )
    return Speaker(
            id=f"spk{index:03d}",
            voice=voice,
            center_x=float(48 + rng.uniform(-4, 4)),
            center_y=float(50 + rng.uniform(-4, 4)),
            half_width=float(rng.uniform(26, 34)),
            max_opening=float(rng.uniform(22, 30)),
            upper_lip=float(rng.uniform(5, 9)),
            lower_lip=float(rng.uniform(7, 12)),
            skin=skin,
            lip=float(skin * rng.uniform(0.55, 0.8)),
            cavity=float(rng.uniform(12, 40)),
            teeth=float(rng.uniform(190, 235)),
            tongue=float(rng.uniform(80, 125)),
            light_angle=float(rng.uniform(0, 2 * np.pi)),
            light_strength=float(rng.uniform(0, 30)),
            noise=float(rng.uniform(2, 7)),
            jitter=float(rng.uniform(0.3, 1.5)),
    )
