"""Turns raw talking-face video and audio into lipjax's clip format.

`mouth_roi(path)` gives 25 fps 96x96 grayscale mouth crops; `load_audio(path)` 16 kHz mono int16;
`load_video(path)` RGB frames at 25 fps. `python -m lipjax.preprocess IN_DIR OUT_DIR` crops a
whole folder on all cores. Needs the `preprocess` extra (PyAV, dlib, scikit-image).
"""

from lipjax.preprocess.errors import (
    NoAudioError,
    NoFaceError,
    NoVideoError,
    PreprocessError,
    UndecodableError,
)
from lipjax.preprocess.landmarks import (
    DlibLandmarker,
    Landmarker,
    get_landmarker,
    register_landmarker,
)
from lipjax.preprocess.media import iter_video, load_audio, load_video, write_video, write_wav
from lipjax.preprocess.mouth_roi import MouthRoi, extract_mouth, mouth_roi

__all__ = [
    "DlibLandmarker",
    "Landmarker",
    "MouthRoi",
    "NoAudioError",
    "NoFaceError",
    "NoVideoError",
    "PreprocessError",
    "UndecodableError",
    "extract_mouth",
    "get_landmarker",
    "iter_video",
    "load_audio",
    "load_video",
    "mouth_roi",
    "register_landmarker",
    "write_video",
    "write_wav",
]
