"""Viseme identity: phones of one viseme class are pixel-identical, other classes are not."""

from __future__ import annotations

import numpy as np
import pytest

from lipjax.synth import render, speakers, visemes
from lipjax.synth.speech import PhoneTiming
from lipjax.units import phonemes


def _frames(middle: str, speaker: speakers.Speaker) -> tuple[np.ndarray, np.ndarray]:
    """Frames of "a <middle> a" with fixed timings, the same rng each time."""
    phones = [PhoneTiming("a", 0.10, 0.30), PhoneTiming(middle, 0.30, 0.42),
              PhoneTiming("a", 0.42, 0.62)]
    params = render.trajectory(phones, 20)
    return render.render(params, speaker, np.random.default_rng(5)), params


@pytest.mark.parametrize("group", [("p", "b", "m"), ("f", "v"), ("k", "ɡ"), ("t", "d", "n"),
                                   ("s", "z"), ("ʃ", "ʒ", "tʃ", "dʒ"), ("pː", "bː")])
def test_same_viseme_same_frames(group: tuple[str, ...]):
    speaker = speakers.make_speaker("en", 3)
    reference, _ = _frames(group[0], speaker)
    for phone in group[1:]:
        assert visemes.viseme_of(phone) == visemes.viseme_of(group[0])
        assert np.array_equal(_frames(phone, speaker)[0], reference), phone


@pytest.mark.parametrize("a,b", [("p", "f"), ("p", "t"), ("f", "s"), ("k", "w"), ("i", "u"),
                                 ("a", "o"), ("s", "ʃ"), ("θ", "t")])
def test_different_visemes_different_frames(a: str, b: str):
    speaker = speakers.make_speaker("en", 3)
    frames_a, _ = _frames(a, speaker)
    frames_b, _ = _frames(b, speaker)
    assert visemes.viseme_of(a) != visemes.viseme_of(b)
    assert np.abs(frames_a.astype(int) - frames_b.astype(int)).max() > 40


def test_bilabial_closes_the_mouth():
    speaker = speakers.make_speaker("es", 1)
    frames, params = _frames("p", speaker)
    opening = params[:, 0]
    assert opening[9] < 0.5 * opening[5] and opening[9] < 0.5 * opening[13]  # p at 0.36 s
    dark = render.measure_opening(frames, (speaker.cavity + speaker.lip) / 2)
    assert dark[9] < 0.5 * dark[5]


def test_every_inventory_phone_has_a_viseme():
    for phone in phonemes.load_inventory().phones[2:]:
        for cls in visemes.classes(phone):
            assert cls in visemes.VISEMES, phone
    assert visemes.classes("aʊ") == ("open_vowel", "close_round_vowel")  # diphthong: two targets
