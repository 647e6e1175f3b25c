"""Why a clip could not be preprocessed, as distinct exception types.

Corpus builders skip bad clips and count them per reason, so each reason is its own class; all
of them name the offending file.
"""

from __future__ import annotations

import os


class PreprocessError(Exception):
    """A clip that cannot become a training example; `path` names the file."""

    def __init__(self, path: str | os.PathLike[str], message: str):
        self.path = str(path)
        super().__init__(f"{self.path}: {message}")


class UndecodableError(PreprocessError):
    """FFmpeg could not open or decode the file, or it has no stream of the needed kind."""


class NoAudioError(UndecodableError):
    """The file decodes but has no audio stream."""


class NoVideoError(UndecodableError):
    """The file decodes but has no video stream (an audio file where a video was expected): a
    different modality, not a broken file, so builders count it apart."""


class NoFaceError(PreprocessError):
    """No frame of the clip contains a face the landmarker can find."""
