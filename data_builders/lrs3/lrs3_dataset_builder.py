"""LRS3-TED: English TED talk clips with transcripts, read from the release as distributed.

Layout: `lrs3/{pretrain,trainval,test}/<YouTubeID>/<NNNNN>.{mp4,txt}`; the `.txt` starts with
`Text:  AND THEN THERE'S THIS {LG}` (brace tokens are non-speech tags and are dropped), then a
`WORD START END ASDSCORE` table. Splits: `pretrain`, `train` (trainval without the validation
ids), `validation`, `test`. Pretrain clips run to minutes; those longer than
`pretrain_max_seconds` are cut at the longest pauses between words (ids `<clip>_<k>`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools

from etils import epath

from data_builders import manual_corpus as mc

_SPLIT_DIRS = ("pretrain", "trainval", "test")
# LRS3 has no official validation list; 1,200 of 31,982 trainval clips are held out by a hash of
# the clip id (stable across machines) unless `validation_ids.txt` names them.
_VALIDATION_PER_10K = 375
_VALIDATION_FILE = "validation_ids.txt"


def parse_transcript(raw: str) -> str:
    """The `Text:` line of an LRS3/LRS2 clip file, without `{LG}`-style non-speech tags."""
    for line in raw.splitlines():
        if line.startswith("Text:"):
            words = line[len("Text:"):].split()
            return " ".join(w for w in words if not (w.startswith("{") and w.endswith("}")))
    raise mc.BadItem(mc.BAD_TRANSCRIPT, "no 'Text:' line")


Word = tuple[str, float, float]  # word, start, end (seconds from the clip start)


def parse_words(raw: str) -> list[Word]:
    """The word table after `WORD START END ...`, without non-speech tags (empty if absent); it
    ends at a blank line or another table (some releases add `FRAME X Y W H` rows)."""
    lines = raw.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("WORD ")), None)
    words = []
    for line in lines[header + 1:] if header is not None else []:
        parts = line.split()
        try:
            start, end = float(parts[1]), float(parts[2])
        except (IndexError, ValueError):
            break
        if not parts[0].startswith("{"):
            words.append((parts[0], start, end))
    return words


def split_words(words: list[Word], max_seconds: float) -> list[list[Word]]:
    """Consecutive pieces no longer than `max_seconds`, each cut at the longest pause that keeps
    the piece short enough (a single longer word stays a piece of its own)."""
    pieces, rest = [], list(words)
    while rest and rest[-1][2] - rest[0][1] > max_seconds:
        fits = [i for i in range(1, len(rest)) if rest[i - 1][2] - rest[0][1] <= max_seconds]
        pause = lambda i: round(rest[i][1] - rest[i - 1][2], 3)  # noqa: B023 - to the ms
        cut = max(fits, key=lambda i: (pause(i), i)) if fits else 1
        pieces.append(rest[:cut])
        rest = rest[cut:]
    return pieces + ([rest] if rest else [])


@dataclasses.dataclass(eq=False)
class Lrs3Config(mc.ManualCorpusConfig):
    """`pretrain_max_seconds`: cut longer pretrain clips into pieces (0 keeps them whole)."""

    pretrain_max_seconds: float = 15.0


def _hash(clip_id: str) -> int:
    return int(hashlib.md5(clip_id.encode("utf-8")).hexdigest()[:8], 16) % 10_000


def validation_pick(trainval: list[mc.Clip], listed: set[str] | None,
                    listing: epath.Path) -> list[bool]:
    """Which trainval clips are validation: those `listed` (validation_ids.txt), else ~3.75 % by
    id hash. Never none when trainval has clips (TFDS cannot write an empty split): a small
    corpus whose hashes pick nothing, or a list naming no clip here, holds out the clip of the
    lowest hash instead."""
    if listed is not None:
        held = [c.id.split("/", 1)[1] in listed for c in trainval]
        if trainval and not any(held):
            mc.log.warning("%s names none of the %d trainval clips; holding out by id hash.",
                           listing, len(trainval))
    if listed is None or not any(held):
        held = [_hash(c.id) < _VALIDATION_PER_10K for c in trainval]
    if trainval and not any(held):
        held[min(range(len(trainval)), key=lambda i: _hash(trainval[i].id))] = True
    return held


class Builder(mc.ManualCorpusBuilder):
    """LRS3-TED audio-visual English clips as 96x96 mouth crops."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Request LRS3-TED at https://mmai.io/datasets/lip_reading/ (agreement required), download
    the pretrain, trainval and test archives and extract them into `manual_dir` so that it holds
    `lrs3/pretrain/<YouTubeID>/00001.mp4` (and `.txt`), `lrs3/trainval/...` and `lrs3/test/...`
    (the `lrs3/` level may be omitted). Optionally put `validation_ids.txt` (one
    `trainval/<YouTubeID>/<NNNNN>` or `<YouTubeID>/<NNNNN>` per line) next to those folders to
    choose the validation clips; otherwise 1,200 trainval clips are held out by id hash.
    """
    BUILDER_CONFIGS = [
            Lrs3Config(name="en", description="English, video + audio.", language="en",
                       with_video=True),
    ]

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        return mc.find_root(manual_dir, ("lrs3", "LRS3", ""), [f"{s}/*/*" for s in _SPLIT_DIRS],
                            "LRS3 split folders pretrain/, trainval/ or test/")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        by_dir = {d: _list_dir(root / d, d) for d in _SPLIT_DIRS if (root / d).exists()}
        if self.builder_config.pretrain_max_seconds > 0 and "pretrain" in by_dir:
            by_dir["pretrain"] = [piece for clip in by_dir["pretrain"]
                                  for piece in _pieces(clip, self.builder_config)]
        splits = {"pretrain": by_dir.get("pretrain", []), "test": by_dir.get("test", [])}
        trainval = by_dir.get("trainval", [])
        held = validation_pick(trainval, _validation_ids(root), root / _VALIDATION_FILE)
        splits["train"] = [c for c, h in zip(trainval, held, strict=True) if not h]
        splits["validation"] = [c for c, h in zip(trainval, held, strict=True) if h]
        return splits

    def split_source(self, root: epath.Path, split: str) -> str:
        folder = {"train": "trainval", "validation": "trainval"}.get(split, split)
        return f"{root / folder}/ (LRS3 split folder {folder}/<YouTubeID>/<NNNNN>.mp4)"

    def read_transcript(self, path: epath.Path) -> str:
        # LRS3 text is ASCII uppercase; ISO-8859-1 reads any byte, so no clip fails on encoding.
        return parse_transcript(mc.read_text(path, encoding="iso-8859-1"))


def _pieces(clip: mc.Clip, config: Lrs3Config) -> list[mc.Clip]:
    """A long clip as pieces cut halfway through the pauses between them (the clip if short)."""
    try:
        raw = mc.read_text(clip.text_path, encoding="iso-8859-1")
    except mc.BadItem:
        return [clip]  # counted when the clip is read
    pieces = split_words(parse_words(raw), config.pretrain_max_seconds)
    if len(pieces) < 2:
        return [clip]
    bounds = [None] + [(a[-1][2] + b[0][1]) / 2 for a, b in itertools.pairwise(pieces)] + [None]
    return [dataclasses.replace(clip, id=f"{clip.id}_{k:02d}", text_path=None,
                                text=" ".join(w for w, _, _ in words), start=bounds[k],
                                end=bounds[k + 1])
            for k, words in enumerate(pieces)]


def _validation_ids(root: epath.Path) -> set[str] | None:
    path = root / _VALIDATION_FILE
    if not path.exists():
        return None
    ids = set()
    for line in path.read_text().splitlines():
        parts = line.strip().split("/")
        if len(parts) >= 2:
            ids.add("/".join(parts[-2:]))
    return ids


def _list_dir(split_dir: epath.Path, name: str) -> list[mc.Clip]:
    """Clips of one split folder: every `<talk>/<n>` with an .mp4 or a .txt (a missing partner is
    counted as a missing file when the clip is read)."""
    clips = []
    for talk in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        stems = sorted({p.stem for p in talk.iterdir() if p.suffix in (".mp4", ".txt")})
        for stem in stems:
            clips.append(mc.Clip(id=f"{name}/{talk.name}/{stem}", speaker=talk.name,
                                 path=talk / f"{stem}.mp4", text_path=talk / f"{stem}.txt"))
    return clips
