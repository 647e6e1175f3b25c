"""Data throughput: synthetic corpus generation and the input pipeline, in clips/s per CPU core.

    python -m experiments.bench_data                  # both, 5 repeats each
    python -m experiments.bench_data --skip_corpus    # pipeline only

"Per core" = clips / CPU seconds (this process + its children), so the number does not depend on
how many cores the machine happened to have free. Corpus generation times
`data_builders.synthetic_lips.build` of a small synthetic_lips/en_video (speech synthesis,
rendering, units, array_record writing). The
pipeline is measured on 3-second clips
(75 frames of 96x96 stored, random-cropped to 88x88, flipped, time-masked, tokenised, batched) from
an array_record corpus of fixed-length clips written here; the reported figure is the median over
the repeats. Prints a markdown table row with machine, command and date.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shlex
import shutil
import sys
import tempfile
import time

import ml_collections
import numpy as np
import tensorflow_datasets as tfds

from lipjax import languages
from lipjax.data import pipeline
from lipjax.data.features import SAMPLES_PER_FRAME, clip_features
from lipjax.units import tokenizer

BENCH_BUILDER = "lipjax_bench_clips"
FRAMES = 75
WORDS = ("the cat sat on a mat dog ran far away big red sun house tree water light sea green "
         "small city people time year world hand eye day night").split()


class LipjaxBenchClips(tfds.core.GeneratorBasedBuilder):
    """Fixed-length 3 s clips in the lipjax clip schema, for timing the input pipeline."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name="en_video")]

    def __init__(self, *, num_clips: int = 256, **kwargs):
        self._num_clips = num_clips
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly (not dataset_info_from_configs): that reads package metadata, and this
        # module usually runs as __main__.
        return tfds.core.DatasetInfo(builder=self, features=clip_features(with_video=True))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples(self._num_clips)}

    def _generate_examples(self, n: int):
        for i in range(n):
            yield i, bench_clip(i)


def bench_clip(i: int) -> dict:
    """One 75-frame clip: smooth mouth-like intensity fields (compress like rendered crops)."""
    rng = np.random.default_rng(i)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    phase = rng.uniform(0, 2 * np.pi, size=(FRAMES, 1, 1))
    opening = 0.15 + 0.1 * np.sin(np.linspace(0, 6, FRAMES))[:, None, None]
    mouth = np.exp(-((xx - 0.5) ** 2 / 0.08 + (yy - 0.55) ** 2 / opening ** 2 * 0.02))
    video = 90 + 120 * mouth * (0.8 + 0.2 * np.sin(phase)) + rng.normal(0, 4, (FRAMES, 96, 96))
    words = rng.choice(WORDS, size=int(rng.integers(4, 9)))
    text = " ".join(words)
    return {
            "id": f"bench_{i:06d}", "language": "en", "speaker": f"spk{i % 8}", "text": text,
            "phonemes": " | ".join(" ".join(w) for w in words),
            "phoneme_ids": rng.integers(2, 60, size=3 * len(words)).astype(np.int32),
            "units": rng.integers(0, 100, size=FRAMES).astype(np.int32),
            "audio": rng.integers(-3000, 3000, FRAMES * SAMPLES_PER_FRAME).astype(np.int16),
            "video": np.clip(video, 0, 255).astype(np.uint8),
    }


def cpu_seconds() -> float:
    """User + system CPU time of this process and its (finished) children."""
    own, kids = (resource.getrusage(resource.RUSAGE_SELF),
                 resource.getrusage(resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn):
    """(fn(), wall seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = fn()
    return result, time.perf_counter() - wall, cpu_seconds() - cpu


def bench_corpus(root: str, clips: int, repeats: int) -> list[float]:
    """clips per CPU-second of `data_builders.synthetic_lips.build` (generate + write
    synthetic_lips/en_video).

    The shared unit codebook is fitted once beforehand and copied into each repeat's data_dir:
    it is a one-off per corpus, not a per-clip cost. `clips` <= 15 keeps generation in-process
    (the generator uses one worker per 8 clips), so the CPU accounting is exact.
    """
    from data_builders.synthetic_lips import synthetic_lips_dataset_builder as synthetic_lips
    from data_builders.synthetic_lips.build import build

    warm = os.path.join(root, "corpus_warm")
    synthetic_lips.shared_codebook(warm)  # also warms espeak-ng up
    rates = []
    for r in range(repeats):
        data_dir = os.path.join(root, f"corpus{r}")
        shutil.copytree(os.path.join(warm, "units"), os.path.join(data_dir, "units"))
        sizes = {"train": clips, "validation": 0, "test": 0}
        built, _, cpu = timed(lambda d=data_dir, s=sizes, r=r: build(["en"], ["video"], d,
                                                                      sizes=s, seed=r))
        total = sum(s.num_examples for b in built.values() for s in b.info.splits.values())
        rates.append(total / cpu)
    return rates


def bench_pipeline(root: str, clips: int, batch_size: int, repeats: int,
                   num_workers: int) -> list[float]:
    """clips per CPU-second through `make_loader` (train mode, full augmentation), per repeat."""
    data_dir = os.path.join(root, "pipeline")
    tfds.disable_progress_bar()
    LipjaxBenchClips(num_clips=clips, data_dir=data_dir,
                     file_format="array_record").download_and_prepare()
    tokenizer.train_tokenizer([bench_clip(i)["text"] for i in range(clips)],
                              languages.get("en").tokenizer_path(data_dir), vocab_size=1000)
    cfg = ml_collections.ConfigDict(dict(
            builder=BENCH_BUILDER, data_dir=data_dir, sources=[("en_video", 1.0)],
            batch_size=batch_size, frame_buckets=(50, 75, 100, 150), max_frames=150,
            token_bucket=16, crop=88, hflip=True, time_mask_frames=10, time_masks=2,
            num_workers=num_workers))
    batches = max(2, clips // batch_size)
    rates = []
    for r in range(repeats):
        loader = pipeline.make_loader(cfg, "train", train=True, seed=r)
        next(loader)  # warm-up: threads, tokenizer, first reads
        # Worker processes' CPU time is only counted once they exit, hence close() inside the
        # timing (with workers this also charges their prefetched batches: a conservative rate).
        _, _, cpu = timed(lambda ld=loader: ([next(ld) for _ in range(batches)], ld.close()))
        rates.append(batches * batch_size / cpu)
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--corpus_clips", type=int, default=8)
    parser.add_argument("--pipeline_clips", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--num_workers", type=int, default=0)
    parser.add_argument("--skip_corpus", action="store_true")
    parser.add_argument("--workdir", default=None, help="where to write the bench corpora")
    args = parser.parse_args(argv)

    root = args.workdir or tempfile.mkdtemp(prefix="lipjax_bench_data_")
    try:
        _run(args, root)
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def _run(args: argparse.Namespace, root: str) -> None:
    pipe = bench_pipeline(root, args.pipeline_clips, args.batch_size, args.repeats,
                          args.num_workers)
    print(f"pipeline clips/s per core, runs: {', '.join(f'{r:.1f}' for r in pipe)}", flush=True)
    corpus: list[float] = []
    corpus_note = "skipped"
    if not args.skip_corpus:
        try:
            corpus = bench_corpus(root, args.corpus_clips, args.repeats)
            corpus_note = f"{np.median(corpus):.2f}"
        except Exception as e:  # report the pipeline number regardless
            corpus_note = f"failed ({type(e).__name__}: {e})"
    machine = f"{platform.platform()}, {platform.processor() or platform.machine()}, " \
              f"os.cpu_count()={os.cpu_count()}"
    command = "python -m experiments.bench_data " + shlex.join(sys.argv[1:])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if corpus:
        print(f"corpus clips/s per core, runs: {', '.join(f'{r:.2f}' for r in corpus)}")
    print()
    print("| machine | command | date | corpus generation (clips/s/core) "
          "| pipeline 88x88x75 (clips/s/core) |")
    print("|---|---|---|---|---|")
    print(f"| {machine} | `{command.strip()}` | {date} | {corpus_note} "
          f"| {np.median(pipe):.1f} |")


if __name__ == "__main__":
    main()
