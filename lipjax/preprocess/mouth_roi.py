"""Raw video -> 25 fps -> landmarks -> smoothing -> alignment to the mean face -> 96x96 mouth crop.

The crop is what every lipjax video corpus stores (`lipjax.schema.ROI_SIZE`): grayscale,
the mouth centred, the face at one fixed scale and upright whatever the camera saw.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

import numpy as np
from scipy import ndimage

from lipjax.preprocess import alignment
from lipjax.preprocess.errors import UndecodableError
from lipjax.preprocess.landmarks import Landmarker, detect, fill_missing, get_landmarker
from lipjax.preprocess.media import iter_video
from lipjax.schema import FPS, ROI_SIZE

# Mean-face scale in pixels per template unit: the mouth (corner to corner) then spans ~47 px of
# the 96 px crop, which shows the nostrils above and the chin below, as in LRS3/auto_avsr crops.
FACE_SCALE = 100.0
SMOOTH_WINDOW = 7  # frames; 0.28 s at 25 fps
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R BT.601


@dataclasses.dataclass(frozen=True)
class MouthRoi:
    """Crops plus the geometry that produced them.

    Attributes:
        crops: uint8 (T, size, size) grayscale mouth crops.
        crop_to_frame: float64 (T, 3, 3); maps crop pixel coordinates (x, y, 1) (pixel centres at
            integers) to coordinates in the decoded frame.
        landmarks: float32 (T, 68, 2) smoothed landmarks in frame coordinates.
        found: bool (T,) whether the landmarker saw a face in that frame (others interpolated).
    """

    crops: np.ndarray
    crop_to_frame: np.ndarray
    landmarks: np.ndarray
    found: np.ndarray


def crop_geometry(
        landmarks: np.ndarray, size: int = ROI_SIZE, face_scale: float = FACE_SCALE
) -> np.ndarray:
    """(T, 3, 3) crop->frame matrices from smoothed landmarks (T, 68, 2).

    Each frame is mapped onto the mean face by its stable points; the crop is the size x size
    window of that aligned face centred on the mean of the 20 aligned lip points.
    """
    template = alignment.mean_face(face_scale)
    stable = alignment.STABLE_POINTS
    to_template = alignment.fit_similarity(landmarks[:, stable], template[stable])
    mouth = alignment.apply(to_template, landmarks[:, alignment.MOUTH_POINTS]).mean(1)
    offset = np.tile(np.eye(3), (len(landmarks), 1, 1))
    offset[:, :2, 2] = mouth - (size - 1) / 2.0
    return np.linalg.inv(to_template) @ offset


def warp_crop(frame: np.ndarray, crop_to_frame: np.ndarray, size: int = ROI_SIZE) -> np.ndarray:
    """Samples one grayscale crop from an RGB frame (bilinear; blurred first when shrinking, so
    high-resolution video does not alias). Outside the frame is black."""
    edge = size - 1.0
    corners = alignment.apply(crop_to_frame, np.array([[0, 0], [edge, 0], [0, edge], [edge, edge]]))
    shrink = float(np.sqrt(abs(np.linalg.det(crop_to_frame[:2, :2]))))
    sigma = max(0.0, (shrink - 1.0) / 2.0)
    margin = 2 + int(np.ceil(3 * sigma))
    height, width = frame.shape[:2]
    x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int) - margin, 0)
    x1 = min(int(np.ceil(corners[:, 0].max())) + margin + 1, width)
    y1 = min(int(np.ceil(corners[:, 1].max())) + margin + 1, height)
    if x0 >= x1 or y0 >= y1:
        return np.zeros((size, size), np.uint8)
    region = frame[y0:y1, x0:x1].astype(np.float32) @ _LUMA
    if sigma > 0:
        region = ndimage.gaussian_filter(region, sigma)
    v, u = np.mgrid[0:size, 0:size].astype(np.float64)
    src = alignment.apply(crop_to_frame, np.stack([u.ravel(), v.ravel()], 1))
    coords = np.stack([src[:, 1] - y0, src[:, 0] - x0])
    out = ndimage.map_coordinates(region, coords, order=1, mode="constant", cval=0.0)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8).reshape(size, size)


def extract_mouth(
        video: str | os.PathLike[str] | np.ndarray,
        *,
        landmarker: Landmarker | str = "dlib68",
        fps: float = FPS,
        size: int = ROI_SIZE,
        face_scale: float = FACE_SCALE,
        smooth_window: int = SMOOTH_WINDOW,
) -> MouthRoi:
    """The full pipeline with its geometry. `video` is a file path (decoded twice, streaming, so
    long clips do not sit in memory) or RGB frames (T, H, W, 3) already at the wanted rate."""
    if isinstance(landmarker, str):
        landmarker = get_landmarker(landmarker)
    name = "<frames>" if isinstance(video, np.ndarray) else os.fspath(video)

    def frames() -> Iterable[np.ndarray]:
        return video if isinstance(video, np.ndarray) else iter_video(video, fps)

    raw, found = detect(frames(), landmarker)
    if not len(found):
        raise UndecodableError(name, "contains no video frame")
    landmarks = alignment.smooth(fill_missing(raw, found, name), smooth_window)
    geometry = crop_geometry(landmarks, size, face_scale)
    crops = np.stack([warp_crop(f, m, size) for f, m in zip(frames(), geometry, strict=True)])
    return MouthRoi(crops, geometry, landmarks.astype(np.float32), found)


def mouth_roi(video_path: str | os.PathLike[str], **kwargs) -> np.ndarray:
    """uint8 (T, 96, 96) grayscale mouth crops at 25 fps; see `extract_mouth` for the options.

    Raises FileNotFoundError, `UndecodableError`, or `NoFaceError` (no face in any frame).
    """
    return extract_mouth(video_path, **kwargs).crops
