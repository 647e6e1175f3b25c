"""Crops the mouth out of every video under a folder, on all cores (`python -m lipjax.preprocess`).

    python -m lipjax.preprocess IN_DIR OUT_DIR [--format npz|mp4] [--workers N]
        [--plugin MODULE --landmarker NAME]

Lives in a module of its own, not in `__main__`: the worker processes are spawned, and a spawned
process can import this module but not the parent's `__main__`, so every function a worker runs
must be defined here.

Writes OUT_DIR/<same relative path>.npz (arrays `video` uint8 (T, 96, 96) and, when the source has
sound, `audio` int16 16 kHz mono) or .mp4 (H.264 crops at 25 fps + AAC audio). Existing
outputs are kept, so an interrupted run resumes. Clips that fail are listed per reason at the end.

Exit status: 0 every clip cropped; 3 some clips failed and the rest were written (the folder is
usable: chain on with `... || [ $? -eq 3 ]`); 1 nothing usable (no video found, or every clip
failed); 2 bad arguments or a missing input folder.
With --format mp4, a `manifest.csv` in IN_DIR (data_builders/my_corpus) is carried over with its
video paths renamed to the crops and its other files (audio) copied, so OUT_DIR builds directly
(with `video_is_roi`).
"""

from __future__ import annotations

import argparse
import collections
import csv
import importlib
import multiprocessing
import os
import shutil
import sys
from collections.abc import Sequence

import numpy as np
import tqdm

from lipjax.preprocess.errors import NoAudioError, PreprocessError
from lipjax.preprocess.media import load_audio, write_video
from lipjax.preprocess.mouth_roi import mouth_roi

# Exit statuses (the module docstring, which --help prints, says what each means).
ALL_CROPPED, NOTHING_USABLE, BAD_INPUT, SOME_FAILED = 0, 1, 2, 3

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg", ".m4v", ".flv")


def find_videos(root: str) -> list[str]:
    """Video files under `root`, as sorted paths relative to it."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            if name.lower().endswith(VIDEO_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return sorted(found)


def process(src: str, dst: str, fmt: str, landmarker: str) -> None:
    """Crops one clip and writes it to `dst` (via a temporary file, so no half-written output)."""
    crops = mouth_roi(src, landmarker=landmarker)
    try:
        audio = load_audio(src)
    except NoAudioError:
        audio = None
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    tmp = f"{dst}.tmp.{fmt}"
    if fmt == "npz":
        arrays = {"video": crops} if audio is None else {"video": crops, "audio": audio}
        np.savez_compressed(tmp, **arrays)
    else:
        write_video(tmp, crops, audio=audio)
    os.replace(tmp, dst)


def carry_manifest(in_dir: str, out_dir: str, name: str = "manifest.csv") -> bool:
    """Writes OUT_DIR/manifest.csv pointing at the .mp4 crops; copies the rows' non-video files."""
    src = os.path.join(in_dir, name)
    if not os.path.exists(src):
        return False
    with open(src, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    column = [c.strip() for c in rows[0]].index("path") if rows and "path" in rows[0] else None
    if column is None:
        return False
    for row in rows[1:]:
        if len(row) <= column or os.path.isabs(row[column]):
            continue
        rel = row[column]
        if rel.lower().endswith(VIDEO_EXTENSIONS):
            row[column] = os.path.splitext(rel)[0] + ".mp4"
        elif os.path.exists(os.path.join(in_dir, rel)):
            os.makedirs(os.path.dirname(os.path.join(out_dir, rel)) or ".", exist_ok=True)
            shutil.copy2(os.path.join(in_dir, rel), os.path.join(out_dir, rel))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, name), "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return True


def _import_plugins(modules: Sequence[str]) -> None:
    """Imports modules that call `register_landmarker` (in every worker process too)."""
    for module in modules:
        importlib.import_module(module)


def _job(args: tuple[str, str, str, str]) -> tuple[str, str | None, str]:
    src = args[0]
    try:
        process(*args)
        return src, None, ""
    except FileNotFoundError as e:
        return src, "missing file", str(e)
    except PreprocessError as e:
        return src, type(e).__name__, str(e)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lipjax.preprocess", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("in_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--format", choices=("npz", "mp4"), default="npz")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--landmarker", default="dlib68", help="name given to register_landmarker")
    parser.add_argument("--plugin", action="append", default=[],
                        help="module to import first, e.g. one registering a landmarker")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    _import_plugins(args.plugin)

    if not os.path.isdir(args.in_dir):
        print(f"Input folder {args.in_dir} does not exist.", file=sys.stderr)
        return BAD_INPUT
    videos = find_videos(args.in_dir)
    if not videos:
        print(f"No videos ({', '.join(VIDEO_EXTENSIONS)}) under {args.in_dir}", file=sys.stderr)
        return NOTHING_USABLE
    jobs = []
    for rel in videos:
        dst = os.path.join(args.out_dir, os.path.splitext(rel)[0] + "." + args.format)
        if args.overwrite or not os.path.exists(dst):
            jobs.append((os.path.join(args.in_dir, rel), dst, args.format, args.landmarker))
    failures: dict[str, list[str]] = collections.defaultdict(list)
    context = multiprocessing.get_context("spawn")
    with context.Pool(max(1, args.workers), _import_plugins, (args.plugin,)) as pool:
        results = pool.imap_unordered(_job, jobs)
        for src, reason, message in tqdm.tqdm(results, total=len(jobs), unit="clip"):
            if reason is not None:
                failures[reason].append(message or src)
    done = len(jobs) - sum(len(v) for v in failures.values())
    if args.format == "mp4" and carry_manifest(args.in_dir, args.out_dir):
        print(f"manifest.csv written to {args.out_dir} (paths renamed to the .mp4 crops)")
    failed = sum(len(v) for v in failures.values())
    print(f"{done} clips cropped, {len(videos) - len(jobs)} already there, {failed} failed, "
          f"into {args.out_dir}")
    for reason, messages in sorted(failures.items()):
        print(f"{len(messages)} failed ({reason}), e.g.: " + "; ".join(messages[:3]))
    if not failed:
        return ALL_CROPPED
    return SOME_FAILED if failed < len(videos) else NOTHING_USABLE
