"""Real-time factor of `lipjax transcribe` on a face video: cold and warm, with the breakdown.

    python -m experiments.bench_transcribe --workdir out/demo/runs/finetune_it+pt_posterior

The video: `--seconds` (10) of a talking-head stand-in at 25 fps, 512x512 (scikit-image's
astronaut photo, moving, scaling and turning a little, so the face landmarker tracks a real
face in every frame), written once to `--video_dir`.

Cold: `lipjax transcribe --json` on that one video in a fresh process, process start to exit
(wall clock, measured outside), so start-up, imports, checkpoint load, mouth extraction,
compilation, model and decoding all count; RTF = wall / video length. Twice: the first call
compiles (its `--xla_cache` emptied first), a later call finds the compiled programs there.
Warm: one process reads `--copies` copies of the video one batch each (`--batch_size 1`): the
first compiles, the others reuse it; warm RTF = a later video's mouth extraction + model +
decoding over its length (the median over the copies after the first), what a user reading a
folder pays per video. Prints a markdown table; `--json FILE` keeps the reports.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

FPS = 25


def face_video(path: str, seconds: float, size: int = 512) -> str:
    """A `seconds`-long 25 fps video of a moving face (written once)."""
    if os.path.exists(path):
        return path
    from skimage import data, transform

    from lipjax.preprocess import write_video

    photo = data.astronaut()
    centre = np.array([224.0, 128.0])  # near the face, so it stays in view
    frames = []
    for j in range(int(round(seconds * FPS))):
        scale = 1 + 0.1 * np.sin(2 * np.pi * j / 60)
        angle = np.radians(4 * np.sin(2 * np.pi * j / 75))
        shift = np.array([20 * np.sin(2 * np.pi * j / 90), 12 * np.cos(2 * np.pi * j / 70)])
        rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        m = np.eye(3)
        m[:2, :2], m[:2, 2] = rot, centre + shift - rot @ centre
        warped = transform.warp(photo, np.linalg.inv(m), output_shape=(size, size))
        frames.append(np.rint(warped * 255).astype(np.uint8))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_video(path, np.stack(frames), fps=FPS)
    return path


def run_transcribe(args: list[str]) -> tuple[dict, float]:
    """(the --json report, wall seconds from process start to exit)."""
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lipjax.cli", "transcribe", "--json", *args],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"lipjax transcribe {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", required=True, help="A stage-3 run (e.g. the demo's).")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--copies", type=int, default=4, help="Videos in the warm run.")
    parser.add_argument("--video_dir", default="out/bench_transcribe")
    parser.add_argument("--greedy", action="store_true")
    parser.add_argument("--route", choices=("hard", "soft"), default=None,
                        help="a joint reader's routing (default: the run's decoding.route)")
    parser.add_argument("--json", default=None, help="Also write the reports here.")
    args = parser.parse_args()
    video = face_video(os.path.join(args.video_dir, f"face_{args.seconds:g}s.mp4"),
                       args.seconds)
    cache = os.path.join(args.video_dir, "xla_cache")
    shutil.rmtree(cache, ignore_errors=True)  # the first call compiles, as a user's first does
    common = ([f"--workdir={args.workdir}", f"--xla_cache={cache}"]
              + (["--greedy"] if args.greedy else [])
              + ([f"--route={args.route}"] if args.route else []))
    first, first_wall = run_transcribe([*common, f"--video={video}"])
    cold, cold_wall = run_transcribe([*common, f"--video={video}"])
    warm, warm_wall = run_transcribe([*common, "--batch_size=1",
                                      *[f"--video={video}"] * args.copies])
    later = [v for v in warm["videos"] if v["batch"] > 0]
    per_video = [v["seconds"]["mouth_extraction"] + warm["batches"][v["batch"]]["model"]
                 + warm["batches"][v["batch"]]["decoding"] for v in later]
    seconds = cold["video_seconds"]
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.seconds:g} s video at {FPS} fps; {args.workdir} step {cold['step']}, "
          f"{cold['decoding']}, routing {cold.get('route')}")
    print(f"transcript: {cold['videos'][0]['transcript']!r}")
    print("| mode | wall (s) | RTF | start-up | checkpoint load | mouth extraction | model | "
          "decoding |")
    print("|---|---|---|---|---|---|---|---|")
    for name, report, wall in (("cold, first call (compiles)", first, first_wall),
                               ("cold, a later call (compiled programs cached)", cold,
                                cold_wall)):
        s = report["seconds"]
        print(f"| {name} | {wall:.1f} | {wall / seconds:.2f} | {s['start_up'] or 0:.1f} | "
              f"{s['checkpoint_load']:.1f} | {s['mouth_extraction']:.1f} | {s['model']:.1f} | "
              f"{s['decoding']:.1f} |")
    if later:
        compiling = warm["batches"][0]
        mouth = statistics.median(v["seconds"]["mouth_extraction"] for v in later)
        model = statistics.median(warm["batches"][v["batch"]]["model"] for v in later)
        decode = statistics.median(warm["batches"][v["batch"]]["decoding"] for v in later)
        print(f"| warm (per video after the first of {args.copies}) | "
              f"{statistics.median(per_video):.1f} | "
              f"{statistics.median(per_video) / seconds:.2f} | – | – | {mouth:.1f} | "
              f"{model:.1f} | {decode:.1f} |")
        print(f"(warm process: {warm_wall:.1f} s wall for {args.copies} videos; its first "
              f"batch, with the compile: model {compiling['model']:.1f} s, decoding "
              f"{compiling['decoding']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"first": first, "first_wall": first_wall, "cold": cold,
                       "cold_wall": cold_wall, "warm": warm,
                       "warm_wall": warm_wall}, f, indent=1)


if __name__ == "__main__":
    main()
