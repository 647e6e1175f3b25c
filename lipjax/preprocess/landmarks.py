"""Face landmarks per frame through a pluggable `Landmarker`, with gaps filled from neighbours.

The default landmarker is dlib's HOG face detector plus its 68-point shape predictor (the model
file ships in the `face-recognition-models` package and is licensed for non-commercial use only).
Anything that returns the iBUG 68-point layout can replace it: register a factory under a name
and pass that name (or the instance) to `mouth_roi`.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from lipjax.preprocess.alignment import NUM_POINTS
from lipjax.preprocess.errors import NoFaceError


@runtime_checkable
class Landmarker(Protocol):
    """Finds the main face in one RGB frame (H, W, 3) uint8 and returns its 68 iBUG landmarks
    as float32 (68, 2) xy pixel coordinates, or None when it sees no face."""

    def __call__(self, frame: np.ndarray) -> np.ndarray | None: ...


_FACTORIES: dict[str, Callable[[], Landmarker]] = {}


def register_landmarker(name: str, factory: Callable[[], Landmarker]) -> None:
    """Makes `factory` available as `get_landmarker(name)` (e.g. a commercially licensed model)."""
    _FACTORIES[name] = factory
    _instance.cache_clear()


def get_landmarker(name: str = "dlib68") -> Landmarker:
    """One shared instance per process and name (models are slow to load and not picklable)."""
    if name not in _FACTORIES:
        raise KeyError(f"Unknown landmarker {name!r}; registered: {', '.join(sorted(_FACTORIES))}")
    return _instance(name)


@functools.cache
def _instance(name: str) -> Landmarker:
    return _FACTORIES[name]()


def _dlib_model_path() -> str:
    # The package's own accessor imports pkg_resources, which new setuptools no longer ships.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
                "The 68-point dlib model comes from `face-recognition-models`: "
                "pip install 'lipjax[preprocess]'"
        )
    root = next(iter(spec.submodule_search_locations))
    return os.path.join(root, "models", "shape_predictor_68_face_landmarks.dat")


class DlibLandmarker:
    """dlib HOG detector + 68-point shape predictor.

    Detection runs on a copy shrunk to `detect_max_side` pixels (faces in talking-head video are
    large, and the detector's cost grows with the pixel count); landmarks are fitted on the full
    frame. A frame without a detection is retried once with the image upsampled, which finds
    faces down to ~40 px. The most confident detection wins (not the largest: face-like
    patterns in the background can be bigger than the speaker's face).

    Over a video (`track`), each frame's face is searched first near the previous frame's
    (the detector's cost grows with the pixels it scans: a window of twice the face's size
    costs a fraction of the frame), and in the whole frame when it is not there. Every frame
    is still detected, so a frame without a face stays empty.
    """

    def __init__(self, model_path: str | None = None, detect_max_side: int = 640):
        import dlib  # optional dependency: lipjax[preprocess]

        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(model_path or _dlib_model_path())
        self._max_side = detect_max_side

    def __call__(self, frame: np.ndarray) -> np.ndarray | None:
        box = self._face(frame)
        return None if box is None else self._landmarks(frame, box)

    def track(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray | None]:
        """The landmarks of each frame of one video, or None where no face was found."""
        box = None
        for frame in frames:
            local = None if box is None else self._face(frame, near=box)
            box = local if local is not None else self._face(frame)
            yield None if box is None else self._landmarks(frame, box)

    def _landmarks(self, frame: np.ndarray, box: Any) -> np.ndarray:
        shape = self._predictor(frame, box)
        return np.array([(p.x, p.y) for p in shape.parts()], np.float32)

    def _face(self, frame: np.ndarray, near: Any = None) -> Any:
        """The most confident face's box in full-frame pixels (a dlib.rectangle), or None.
        `near`: search only a window of twice that box's size around it, at the resolution
        the whole frame would be searched at."""
        height, width = frame.shape[:2]
        scale = min(1.0, self._max_side / max(height, width))
        x0, y0 = 0, 0
        if near is not None:
            w, h = near.right() - near.left(), near.bottom() - near.top()
            x0, y0 = max(0, near.left() - w // 2), max(0, near.top() - h // 2)
            frame = frame[y0:min(height, near.bottom() + h // 2),
                          x0:min(width, near.right() + w // 2)]
            height, width = frame.shape[:2]
        small = frame
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            small = np.asarray(Image.fromarray(frame).resize(size, Image.BILINEAR))
        small = np.ascontiguousarray(small)
        faces, scores, _ = self._detector.run(small, 0, 0.0)
        if not faces and near is None:
            faces, scores, _ = self._detector.run(small, 1, 0.0)
        if not faces:
            return None
        box = faces[int(np.argmax(scores))]
        return self._dlib.rectangle(
                x0 + round(box.left() / scale), y0 + round(box.top() / scale),
                x0 + round(box.right() / scale), y0 + round(box.bottom() / scale),
        )


register_landmarker("dlib68", DlibLandmarker)


def detect(frames: Iterable[np.ndarray], landmarker: Landmarker) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (T, 68, 2) float32 (NaN where no face) and a found mask (T,) for every frame."""
    points, found = [], []
    # A landmarker that follows the face through a video (DlibLandmarker.track) does so;
    # any other is called frame by frame.
    track = getattr(landmarker, "track", None)
    for p in track(frames) if track else map(landmarker, frames):
        found.append(p is not None)
        points.append(np.full((NUM_POINTS, 2), np.nan, np.float32) if p is None else p)
    if not points:
        return np.zeros((0, NUM_POINTS, 2), np.float32), np.zeros((0,), bool)
    return np.stack(points).astype(np.float32), np.array(found)


def fill_missing(landmarks: np.ndarray, found: np.ndarray, path: str = "<frames>") -> np.ndarray:
    """Linear interpolation over frames without a face (held constant before the first and after
    the last detection); a clip with no detection at all raises `NoFaceError`."""
    if not found.any():
        raise NoFaceError(path, f"no face found in any of its {len(found)} frames")
    if found.all():
        return landmarks
    t = np.arange(len(found))
    flat = landmarks.reshape(len(found), -1)
    filled = np.stack([np.interp(t, t[found], flat[found, k]) for k in range(flat.shape[1])], 1)
    return filled.reshape(landmarks.shape).astype(np.float32)
