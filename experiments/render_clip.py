"""An MP4 of one unseen test clip: the mouth video, with the true and the predicted text under it.

    python -m experiments.render_clip --workdir out/demo/runs/finetune_it+pt_posterior \
        --out out/demo/test_clip.mp4 [--index 0]

What a new user looks at first: the clip comes from the run's test split (speakers never seen
in training), and the prediction is the run's best checkpoint's beam search (`Transcriber` of
experiments/transcribe.py, the path `lipjax transcribe` takes). The MP4 is for people (the
mouth scaled up, the text under it); `--mouth_out` also writes the plain 96x96 crop, which
`lipjax transcribe --roi --video FILE` reads back.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import ml_collections
import numpy as np

BAND = 40  # pixels of text band per line, at the rendered scale


def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def render_frames(frames: np.ndarray, true_text: str, predicted_text: str, *,
                  scale: int = 4) -> np.ndarray:
    """uint8 (T, H, W) grayscale mouth frames → RGB (T, H·scale + 2 bands, W·scale, 3) with
    "true: ..." and "read: ..." written under the picture."""
    from PIL import Image, ImageDraw

    t, h, w = frames.shape
    width, height = w * scale, h * scale
    band = Image.new("RGB", (width, 2 * BAND), (0, 0, 0))
    draw = ImageDraw.Draw(band)
    font = _font(max(10, BAND // 2 - 2))
    for row, (label, text, colour) in enumerate((("true", true_text, (200, 200, 200)),
                                                 ("read", predicted_text, (255, 220, 80)))):
        line = f"{label}: {text}"
        while line and draw.textlength(line, font=font) > width - 8:
            line = line[:-2] + "…"  # keep it on one line, the end marked as cut
        draw.text((4, row * BAND + BAND // 4), line, fill=colour, font=font)
    band_pixels = np.asarray(band)
    big = np.repeat(np.repeat(frames, scale, axis=1), scale, axis=2)
    out = np.empty((t, height + 2 * BAND, width, 3), np.uint8)
    out[:, :height] = big[..., None]
    out[:, height:] = band_pixels[None]
    return out


def render_clip(path: str, frames: np.ndarray, true_text: str, predicted_text: str, *,
                scale: int = 4) -> str:
    """Writes `render_frames(...)` as a 25 fps H.264 MP4 at `path`; returns `path`."""
    from lipjax.preprocess import write_video
    from lipjax.schema import FPS

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_video(path, render_frames(frames, true_text, predicted_text, scale=scale), fps=FPS)
    return path


def test_clip(config: ml_collections.ConfigDict, index: int = 0,
              split: str = "test") -> dict[str, Any]:
    """Clip `index` of the run's first data source's `split`: {"video" (T, 96, 96) uint8,
    "text", "language", "id"}."""
    from lipjax.data.mixture import mixture
    from lipjax.data.source import as_str, open_source

    source = mixture(config.data)[0]
    builder = source.builder or str(config.data.builder)
    examples = open_source(builder, source.config, split, str(config.data.data_dir))
    if not 0 <= index < len(examples):
        raise IndexError(f"--index {index}: {builder}/{source.config} {split} has "
                         f"{len(examples)} clips")
    example = examples[index]
    return {"video": np.asarray(example["video"], np.uint8), "text": as_str(example["text"]),
            "language": as_str(example["language"]), "id": as_str(example["id"])}


def render_test_clip(config: ml_collections.ConfigDict, workdir: str, out: str, *,
                     index: int = 0, mouth_out: str | None = None,
                     greedy: bool = False) -> dict[str, Any]:
    """Reads test clip `index` with the stage-3 run in `workdir` and renders it to `out`
    (and the plain mouth crop to `mouth_out`, for `lipjax transcribe --roi`). Returns
    {"out", "mouth_out", "id", "language", "read_as" (the language it was read in: the run's,
    or its language-ID head's choice), "language_probability", "true", "predicted"}. The demo
    calls this."""
    from experiments.transcribe import Transcriber, make_batch
    from lipjax import languages
    from lipjax.preprocess import write_video
    from lipjax.schema import FPS
    from lipjax.tasks.common import ids_to_text

    clip = test_clip(config, index)
    transcriber = Transcriber(config, workdir, greedy=greedy)
    batch = make_batch(config, [clip["video"]], [clip["language"]], [clip["id"]])
    # As `lipjax transcribe` reads it: a run of several languages routes it by its
    # language-ID head.
    tokens, lengths, [(read_as, probability)], _ = transcriber(batch)
    predicted = ids_to_text(tokens[0], int(lengths[0]), read_as, str(config.data.data_dir))
    true = languages.get(clip["language"]).normalize(clip["text"])
    render_clip(out, clip["video"], true, predicted)
    if mouth_out:
        os.makedirs(os.path.dirname(os.path.abspath(mouth_out)), exist_ok=True)
        write_video(mouth_out, clip["video"], fps=FPS, crf=0)
    return {"out": out, "mouth_out": mouth_out, "id": clip["id"],
            "language": clip["language"], "read_as": read_as,
            "language_probability": probability, "true": true, "predicted": predicted}


def main() -> None:
    from experiments.saved_run import quiet_logs, run_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="A stage-3 run's folder.")
    parser.add_argument("--out", required=True, help="The MP4 to write.")
    parser.add_argument("--mouth_out", default=None,
                        help="Also write the plain 96x96 mouth crop here (for --roi).")
    parser.add_argument("--index", type=int, default=0, help="Which test clip.")
    parser.add_argument("--greedy", action="store_true")
    args = parser.parse_args()
    quiet_logs()
    config = run_config(None, args.workdir)
    result = render_test_clip(config, args.workdir, args.out, index=args.index,
                              mouth_out=args.mouth_out, greedy=args.greedy)
    print(json.dumps(result, ensure_ascii=False), file=sys.stderr)
    print(args.out)


if __name__ == "__main__":
    main()
