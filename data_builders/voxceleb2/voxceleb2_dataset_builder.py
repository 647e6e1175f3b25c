"""VoxCeleb2: unlabelled talking-face video, used for acoustic-unit targets only (no text).

Layout: `vox2/dev/mp4/<speaker>/<youtube id>/<n>.mp4` (audio optionally in the matching
`dev/aac/.../<n>.m4a`), the test set under `vox2/test/mp4/...` or, as its archive unzips,
top-level `vox2/mp4/...`; `vox2_meta.csv` tells dev from test speakers. Splits: `train` (dev),
`test`. Language is `und` (undetermined: VoxCeleb2 is multilingual and unlabelled).
"""

from __future__ import annotations

from etils import epath

from data_builders import manual_corpus as mc

_META = "vox2_meta.csv"


def read_meta(path: epath.Path) -> dict[str, str]:
    """Speaker id -> set ("dev"/"test") from `vox2_meta.csv` (names and values are space-padded)."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    if not lines:
        return {}
    header = [h.strip() for h in lines[0].split(",")]
    if "VoxCeleb2 ID" not in header or "Set" not in header:
        raise mc.LayoutError(f"{path}: expected columns 'VoxCeleb2 ID' and 'Set'; found {header}.")
    who, split = header.index("VoxCeleb2 ID"), header.index("Set")
    rows = [[v.strip() for v in line.split(",")] for line in lines[1:]]
    return {row[who]: row[split] for row in rows if len(row) > max(who, split)}


class Builder(mc.ManualCorpusBuilder):
    """VoxCeleb2 mouth crops + audio with acoustic units; no transcripts."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request VoxCeleb2 at https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox2.html, download the
    dev and test mp4 archives (and optionally aac), and extract them into `manual_dir/vox2/` so
    that it holds `vox2/dev/mp4/id00012/21Uxsk56VDQ/00001.mp4` and `vox2/test/mp4/...` (or the
    test archive's top-level `vox2/mp4/...`). Put `vox2_meta.csv` in `manual_dir` or `vox2/`.
    """
    BUILDER_CONFIGS = [
            mc.ManualCorpusConfig(name="units100", language="und", with_video=True, units_k=100,
                                  description="Mouth crops with 100 k-means acoustic units."),
    ]
    REQUIRES_TEXT = False

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        return mc.find_root(manual_dir, ("vox2", "voxceleb2", "VoxCeleb2", ""),
                            ("dev/mp4/*", "test/mp4/*", "mp4/*"),
                            "VoxCeleb2 video folders dev/mp4/, test/mp4/ or mp4/")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        meta_path = next((p for p in (root / _META, root.parent / _META) if p.exists()), None)
        meta = read_meta(meta_path) if meta_path else {}
        splits: dict[str, list[mc.Clip]] = {"train": [], "test": []}
        for sub, default in (("dev", "train"), ("test", "test"), ("", "test")):
            base = root / sub if sub else root
            for clip in _list_tree(base):
                name = {"dev": "train", "test": "test"}.get(meta.get(clip.speaker, ""), default)
                splits[name].append(clip)
        return {name: clips for name, clips in splits.items() if clips}


def _list_tree(base: epath.Path) -> list[mc.Clip]:
    """`<base>/mp4/<speaker>/<video>/<n>.mp4` clips, with `<base>/aac/...m4a` audio when present."""
    mp4_dir = base / "mp4"
    if not mp4_dir.exists():
        return []
    clips = []
    for speaker in sorted(p for p in mp4_dir.iterdir() if p.is_dir()):
        for video in sorted(p for p in speaker.iterdir() if p.is_dir()):
            for mp4 in sorted(video.glob("*.mp4")):
                m4a = base / "aac" / speaker.name / video.name / f"{mp4.stem}.m4a"
                clips.append(mc.Clip(id=f"{speaker.name}/{video.name}/{mp4.stem}",
                                     speaker=speaker.name, path=mp4,
                                     audio_path=m4a if m4a.exists() else None))
    return clips
