"""Mouth-region video from timed phones: viseme targets, coarticulation, and a numpy renderer.

Timing comes from the synthesizer's phone events, so the mouth opens when the audio gets loud:
viseme targets are held over the middle of each phone (one target per element of a diphthong),
interpolated, then low-pass filtered (coarticulation: the lips never jump between targets),
and each 25 fps frame integrates its 40 ms exposure. The renderer draws a parametric mouth (outer
lip contours, the inner opening, teeth, tongue, a chin crease that moves with the jaw) with soft
edges, per-speaker appearance and per-clip head motion, lighting and noise, as 96x96 grey frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lipjax.schema import FPS, ROI_SIZE
from lipjax.synth import visemes
from lipjax.synth.speakers import Speaker
from lipjax.synth.speech import PhoneTiming

_DT = 0.005  # trajectory resolution (s)
_COARTICULATION_S = 0.02  # std of the Gaussian low-pass on viseme trajectories
_PAUSE_S = 0.08  # a gap between phones longer than this returns to rest
_CHUNK = 4  # frames drawn at once


def trajectory(phones: Sequence[PhoneTiming], num_frames: int) -> np.ndarray:
    """Viseme parameters per frame, float32 (num_frames, len(visemes.PARAMS))."""
    rest = visemes.target("silence")
    times, values = [0.0], [rest]
    previous_end = 0.0
    for phone in phones:
        if phone.start - previous_end > _PAUSE_S:
            times += [previous_end + _PAUSE_S / 2, phone.start - _PAUSE_S / 2]
            values += [rest, rest]
        duration = phone.end - phone.start
        segments = visemes.classes(phone.phone)
        if len(segments) == 1:  # hold the target over the phone's middle
            times += [phone.start + 0.3 * duration, phone.start + 0.7 * duration]
            values += [visemes.target(segments[0])] * 2
        else:
            for k, cls in enumerate(segments):
                times.append(phone.start + (k + 0.5) / len(segments) * duration)
                values.append(visemes.target(cls))
        previous_end = phone.end
    end = num_frames / FPS
    times += [max(previous_end + _PAUSE_S / 2, times[-1]), max(end, times[-1])]
    values += [rest, rest]
    per_frame = int(round(1 / (FPS * _DT)))
    fine_t = (np.arange(num_frames * per_frame) + 0.5) * _DT
    keys = np.stack(values)
    fine = np.stack([np.interp(fine_t, times, keys[:, j]) for j in range(keys.shape[1])], -1)
    fine = ndimage.gaussian_filter1d(fine, _COARTICULATION_S / _DT, axis=0, mode="nearest")
    return fine.reshape(num_frames, per_frame, -1).mean(1).astype(np.float32)


def _inside(d: np.ndarray) -> np.ndarray:
    """Soft (anti-aliased) indicator of d > 0, with d a distance in pixels."""
    return np.minimum(np.maximum(d + np.float32(0.5), np.float32(0.0)), np.float32(1.0))


def render(params: np.ndarray, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """Frames uint8 (T, 96, 96) for per-frame viseme parameters (T, 5) of `speaker`.

    `rng` draws the clip's framing, head motion and noise: same rng state, same pixels.
    """
    t = params.shape[0]
    scale = np.float32(rng.uniform(0.92, 1.08))
    offset = rng.uniform(-2.0, 2.0, size=2)
    motion = ndimage.gaussian_filter1d(rng.normal(size=(t, 2)), 3.0, axis=0, mode="nearest")
    motion = (offset + 3.0 * speaker.jitter * motion).astype(np.float32)
    grid = np.arange(ROI_SIZE, dtype=np.float32)
    angle = speaker.light_angle
    light = float(np.cos(angle)) * grid[None, :] + float(np.sin(angle)) * grid[:, None]
    light = 1 + speaker.light_strength / 255.0 * (light - light.mean()) / 48.0
    frames = np.empty((t, ROI_SIZE, ROI_SIZE), dtype=np.uint8)
    for start in range(0, t, _CHUNK):  # chunks keep the per-pixel arrays in cache
        chunk = slice(start, min(start + _CHUNK, t))
        x = (grid[None, None, :] - speaker.center_x - motion[chunk, 0, None, None]) / scale
        y = (grid[None, :, None] - speaker.center_y - motion[chunk, 1, None, None]) / scale
        image = _draw(params[chunk], x, y, speaker) * light
        noise = rng.standard_normal(size=image.shape, dtype=np.float32)
        image += np.float32(speaker.noise) * noise
        frames[chunk] = np.clip(image + np.float32(0.5), 0, 255).astype(np.uint8)
    return frames


def _draw(params: np.ndarray, x: np.ndarray, y: np.ndarray, speaker: Speaker) -> np.ndarray:
    """Noise-free, unlit grey levels of a few frames; x (t,1,W), y (t,H,1) mouth coordinates."""
    opening, width, rounding, teeth, tongue = (params[:, j, None, None] for j in range(5))
    half_width = speaker.half_width * (1 + 0.12 * width) * (1 - 0.25 * rounding)
    inner_width = half_width * (0.9 - 0.3 * rounding)
    outer = np.sqrt(np.clip(1 - (x / half_width) ** 2, 0, 1))
    inner = np.clip(1 - (x / inner_width) ** 2, 0, 1) ** 0.7
    gap = speaker.max_opening * opening * inner * (1 + 0.2 * rounding)
    top_inner, bottom_inner = -0.35 * gap, 0.65 * gap  # the jaw moves the lower lip more
    bow = 1.0 - 0.35 * np.exp(-(x / 3.0) ** 2)  # cupid's bow dip in the upper lip
    top_outer = top_inner - speaker.upper_lip * (1 + 0.5 * rounding) * outer ** 0.6 * bow
    bottom_outer = bottom_inner + speaker.lower_lip * (1 + 0.5 * rounding) * outer ** 0.6

    lips = _inside(y - top_outer) * _inside(bottom_outer - y) * _inside(outer * 40)
    mouth = _inside(y - top_inner) * _inside(bottom_inner - y) * _inside(inner_width - np.abs(x))
    tooth_depth = teeth * np.minimum(0.45 * speaker.max_opening * opening, 5.0)
    center = _inside(0.75 * inner_width - np.abs(x))
    upper_teeth = mouth * center * _inside(top_inner + tooth_depth - y)
    lower_teeth = mouth * center * _inside(y - (bottom_inner - 0.5 * tooth_depth))
    tongue_mask = mouth * _inside(0.55 * inner_width - np.abs(x)) * _inside(
            y - (bottom_inner - tongue * 0.6 * np.maximum(gap, 1e-3)))

    image = np.full(np.broadcast_shapes(x.shape, y.shape), speaker.skin, dtype=np.float32)
    image -= 25.0 * np.exp(-((y + 30) / 6) ** 2) * np.exp(-(x / 14) ** 2)  # nose shadow
    # Chin crease that follows the jaw; polynomial bumps instead of exp: this runs per pixel.
    bump = np.maximum(1 - ((y - bottom_outer - 7) / 4) ** 2, 0)
    image -= 22.0 * bump * bump * np.exp(-(x / (0.8 * half_width)) ** 2)
    lip_shade = speaker.lip + 12.0 * np.clip((y - bottom_inner) / 4, 0, 1)
    image += lips * (lip_shade - image)
    image += mouth * (speaker.cavity - image)
    image += (upper_teeth + lower_teeth) * (speaker.teeth - image)
    image += tongue_mask * (speaker.tongue - image)
    return image


def measure_opening(frames: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels darker than `threshold` in the central 64x64 of each frame: how open the mouth
    looks, read from the pixels alone (for sync checks and plots)."""
    center = frames[:, 16:80, 16:80].astype(np.float32)
    return (center < threshold).sum(axis=(1, 2)).astype(np.float32)
