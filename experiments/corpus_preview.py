"""Statistics and a preview image of a built synthetic_lips corpus.

    python -m experiments.corpus_preview --data_dir out/data --out out/demo/corpus_preview.png

The preview shows, per language, every 4th frame of one validation clip with its text and
phones, and under it the clip's mouth opening (dark pixels in the mouth box) against the audio's
energy envelope: the two should rise and fall together.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import numpy as np

from lipjax.data import source
from lipjax.data.features import FPS, SAMPLES_PER_FRAME

BUILDER = "synthetic_lips"
LANGS = ("en", "es", "fr", "it", "pt")
SPLITS = ("train", "validation", "test")


def statistics(data_dir: str, langs: tuple[str, ...] = LANGS) -> list[dict[str, Any]]:
    """Clips, hours, speakers and mean words per clip of each built config and split."""
    rows = []
    for lang in langs:
        for modality in ("video", "audio"):
            config = f"{lang}_{modality}"
            for split in SPLITS:
                try:
                    ds = source.open_source(BUILDER, config, split, data_dir)
                except (FileNotFoundError, ValueError):
                    continue
                items = [ds[i] for i in range(len(ds))]
                seconds = sum(len(x["audio"]) for x in items) / (SAMPLES_PER_FRAME * FPS)
                rows.append({"config": config, "split": split, "clips": len(items),
                             "minutes": seconds / 60,
                             "speakers": len({source.as_str(x["speaker"]) for x in items}),
                             "words_per_clip": float(np.mean([
                                 len(source.as_str(x["text"]).split()) for x in items] or [0]))})
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    out = [f"{'config':<10} {'split':<10} {'clips':>6} {'minutes':>8} {'speakers':>8} "
           f"{'words/clip':>10}"]
    for r in rows:
        out.append(f"{r['config']:<10} {r['split']:<10} {r['clips']:>6} {r['minutes']:>8.1f} "
                   f"{r['speakers']:>8} {r['words_per_clip']:>10.1f}")
    return "\n".join(out)


def mouth_opening(video: np.ndarray) -> np.ndarray:
    """Per frame, the fraction of dark pixels in the central mouth box (the open mouth)."""
    box = video[:, 36:72, 24:72].astype(np.float32)
    return (box < 0.5 * np.median(video)).mean(axis=(1, 2))


def audio_envelope(audio: np.ndarray, frames: int) -> np.ndarray:
    x = audio[: frames * SAMPLES_PER_FRAME].astype(np.float32) / 32768.0
    x = np.pad(x, (0, frames * SAMPLES_PER_FRAME - len(x)))
    return np.sqrt((x.reshape(frames, SAMPLES_PER_FRAME) ** 2).mean(1))


def preview(data_dir: str, out_path: str, langs: tuple[str, ...] = LANGS,
            frames_shown: int = 12) -> str:
    """Writes the preview PNG; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(langs), frames_shown,
                             figsize=(1.3 * frames_shown, 2.9 * len(langs)),
                             gridspec_kw={"height_ratios": [1.6, 1] * len(langs)})
    for row, lang in enumerate(langs):
        clip = source.open_source(BUILDER, f"{lang}_video", "validation", data_dir)[0]
        video = np.asarray(clip["video"])
        for col in range(frames_shown):
            ax = axes[2 * row, col]
            t = min(col * 4, len(video) - 1)
            ax.imshow(video[t], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(f"t={t}", fontsize=7)
        axes[2 * row, 0].set_title(
            f"{lang}: \"{source.as_str(clip['text'])}\"  /{source.as_str(clip['phonemes'])}/",
            fontsize=8, loc="left")
        gs = axes[2 * row + 1, 0].get_gridspec()
        for ax in axes[2 * row + 1]:
            ax.remove()
        ax = fig.add_subplot(gs[2 * row + 1, :])
        opening = mouth_opening(video)
        envelope = audio_envelope(np.asarray(clip["audio"]), len(video))
        ax.plot(opening / max(opening.max(), 1e-6), label="mouth opening")
        ax.plot(envelope / max(envelope.max(), 1e-6), label="audio energy")
        r = np.corrcoef(opening, envelope)[0, 1] if opening.std() and envelope.std() else 0.0
        ax.set_title(f"correlation {r:.2f}", fontsize=8, loc="right")
        ax.set_xlim(0, len(video) - 1)
        ax.set_yticks([])
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=90)
    plt.close(fig)
    return out_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", default="out/data")
    parser.add_argument("--out", default="out/demo/corpus_preview.png")
    args = parser.parse_args()
    print(format_table(statistics(args.data_dir)))
    print("preview:", preview(args.data_dir, args.out))


if __name__ == "__main__":
    main()
