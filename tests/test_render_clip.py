"""The rendered test clip: the mouth picture scaled up, exactly, with the two texts under it,
written as a 25 fps MP4 that decodes to as many frames."""

from __future__ import annotations

import numpy as np

from experiments.render_clip import BAND, render_clip, render_frames
from lipjax.preprocess import iter_video


def _frames(t: int = 6, size: int = 12) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (t, size, size), dtype=np.uint8)


def test_picture_is_the_scaled_mouth_and_the_band_holds_the_texts():
    frames = _frames(size=64)
    h = 64 * 4
    out = render_frames(frames, "la casa", "la cosa", scale=4)
    assert out.shape == (6, h + 2 * BAND, h, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[:, :h, :, 0], np.kron(frames, np.ones((1, 4, 4),
                                                                              np.uint8)))
    band = out[0, h:]
    assert band[:BAND].any() and band[BAND:].any()  # both lines written
    np.testing.assert_array_equal(out[:, h:], np.broadcast_to(band, out[:, h:].shape))
    other = render_frames(frames, "la casa", "il cane", scale=4)
    assert np.array_equal(other[0, h:h + BAND], band[:BAND])  # same true text
    assert not np.array_equal(other[0, h + BAND:], band[BAND:])  # another prediction


def test_long_texts_stay_on_their_line():
    out = render_frames(_frames(2), "word " * 40, "", scale=2)
    assert out.shape == (2, 24 + 2 * BAND, 24, 3)


def test_mp4_decodes_to_every_frame(tmp_path):
    frames = _frames(10, 24)
    path = render_clip(str(tmp_path / "clip.mp4"), frames, "true text", "read text", scale=2)
    decoded = list(iter_video(path, 25))
    assert len(decoded) == 10 and decoded[0].shape == (48 + 2 * BAND, 48, 3)
