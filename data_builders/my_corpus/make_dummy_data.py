"""Writes dummy_data/: a manifest and tiny clips, as a user would hand them to my_corpus.

    .venv/bin/python -m data_builders.my_corpus.make_dummy_data

Faces are a 160x160 crop of scikit-image's astronaut photo with a little jitter (a real face for
dlib), speech is espeak-ng. It also writes the rows the builder must skip: a missing file, a file
that is not a video, a video without a face, and an empty transcript.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile

import numpy as np

from lipjax.preprocess import load_audio, write_video, write_wav

DUMMY = pathlib.Path(__file__).parent / "dummy_data"
ROWS = [  # path, transcript, speaker, split, kind
        ("clips/spk1/hello.mp4", "Hello there!", "spk1", "train", "face"),
        ("clips/spk1/morning.mp4", "Good morning, 2 friends.", "spk1", "train", "face"),
        ("clips/spk2/thanks.mp4", "Thank you", "spk2", "dev", "face"),
        ("clips/spk2/bye.mp4", "Goodbye", "spk2", "test", "face"),
        ("clips/spk3/gone.mp4", "This file is missing", "spk3", "train", "none"),
        ("clips/spk3/broken.mp4", "Not a video", "spk3", "train", "garbage"),
        ("clips/spk3/wall.mp4", "Nobody here", "spk3", "train", "noface"),
        ("clips/spk1/cough.mp4", "?!", "spk1", "train", "face"),
        ("audio/spk4/news.wav", "Good news", "spk4", "train", "wav"),
]


def speech(text: str, voice: str = "en-us") -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = pathlib.Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "240", "-w", str(wav), text], check=True)
        return load_audio(wav)


def face_frames(n: int, seed: int) -> np.ndarray:
    from skimage import data

    photo = data.astronaut()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        dx, dy = rng.integers(-3, 4, size=2)
        out.append(photo[40 + dy:200 + dy, 140 + dx:300 + dx])
    return np.stack(out)


def main() -> None:
    shutil.rmtree(DUMMY, ignore_errors=True)
    lines = ["path,transcript,speaker,split"]
    for seed, (rel, text, speaker, split, kind) in enumerate(ROWS):
        quoted = f'"{text}"' if "," in text else text
        lines.append(f"{rel},{quoted},{speaker},{split}")
        path = DUMMY / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        audio = speech(text if text.strip("?!") else "ahem")
        frames = -(-len(audio) // 640)
        if kind == "face":
            write_video(path, face_frames(frames, seed), audio=audio, crf=35)
        elif kind == "noface":
            write_video(path, np.full((frames, 64, 64), 90, np.uint8), audio=audio, crf=35)
        elif kind == "garbage":
            path.write_text("this is not a video\n")
        elif kind == "wav":
            write_wav(path, audio)
    (DUMMY / "manifest.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
