"""Similarity alignment of 68-point face landmarks to a mean face, and their temporal smoothing.

Mapping every frame's face onto one canonical frontal face removes head translation, in-plane
rotation and distance to the camera, so the mouth crop shows the same region at the same scale in
every clip. Only points that do not move with speech (eyes and nose) drive the fit; the mouth is
then cropped where it lands.
"""

from __future__ import annotations

import numpy as np
from scipy import signal

# Mean frontal face for iBUG 68-point landmarks 17..67 (no jaw line) in a unit box, as used by
# dlib's get_face_chip_details (dlib/image_transforms/interpolation.h, Boost Software Licence).
_MEAN_X = (
        0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
        0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
        0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
        0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
        0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
        0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
        0.553364, 0.490127, 0.42689,
)
_MEAN_Y = (
        0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
        0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
        0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
        0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
        0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
        0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
        0.784792, 0.824182, 0.831803, 0.824182,
)
NUM_POINTS = 68
FIRST_TEMPLATE_POINT = 17
STABLE_POINTS = np.arange(27, 48)  # nose bridge, nostrils, both eyes: rigid w.r.t. the skull
MOUTH_POINTS = np.arange(48, 68)  # outer and inner lip contours


def mean_face(scale: float) -> np.ndarray:
    """The template as float64 (68, 2) xy in pixels (jaw rows 0..16 are NaN): `scale` pixels per
    unit, i.e. roughly the distance between the outer eyebrow ends."""
    face = np.full((NUM_POINTS, 2), np.nan)
    face[FIRST_TEMPLATE_POINT:] = np.stack([_MEAN_X, _MEAN_Y], axis=1) * scale
    return face


def smooth(landmarks: np.ndarray, window: int) -> np.ndarray:
    """Savitzky-Golay smoothing over `window` frames (local quadratic fit): removes landmark
    jitter, yet follows head motion without lag, also at the clip's ends where a moving
    average would pull the crop towards the inside of the clip."""
    window = min(window, len(landmarks) - (1 - len(landmarks) % 2))  # odd, at most T
    if window <= 2:
        return landmarks.astype(np.float64)
    return signal.savgol_filter(landmarks.astype(np.float64), window, 2, axis=0, mode="interp")


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping points `src`
    (..., N, 2) onto `dst` (N, 2), batched over leading axes; returns (..., 3, 3) matrices.

    In complex numbers a 2-D similarity is z -> a z + b, and the least-squares `a` is
    sum(conj(s) d) / sum(|s|^2) over centred points (Umeyama's solution without reflection).
    """
    s = src[..., 0] + 1j * src[..., 1]
    d = dst[..., 0] + 1j * dst[..., 1]
    s_mean, d_mean = s.mean(-1, keepdims=True), d.mean(-1, keepdims=True)
    sc, dc = s - s_mean, d - d_mean
    a = (np.conj(sc) * dc).sum(-1) / (np.abs(sc) ** 2).sum(-1)
    b = d_mean[..., 0] - a * s_mean[..., 0]
    m = np.zeros(src.shape[:-2] + (3, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 0, 2] = a.real, -a.imag, b.real
    m[..., 1, 0], m[..., 1, 1], m[..., 1, 2] = a.imag, a.real, b.imag
    m[..., 2, 2] = 1.0
    return m


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Applies (..., 3, 3) affine matrices to (..., N, 2) points."""
    return points @ np.swapaxes(matrix[..., :2, :2], -1, -2) + matrix[..., None, :2, 2]
