"""The MuAViC-prepared layout of mTEDx/LRS3: per-segment 96x96 mouth-crop videos and 16 kHz wavs.

`muavic/<lang>/{train,valid,test}.tsv` (first line the root, `/`; then
`id<TAB>video<TAB>audio<TAB>video_frames<TAB>audio_samples`), `{split}.<lang>` with one transcript
line per row, `audio/<split>/<talk>/<seg>.wav` and `video/<split>/<talk>/<seg>.mp4`. A file that
MuAViC could not produce is `-1` in its row, which then counts as a missing file.
"""

from __future__ import annotations

from etils import epath

from data_builders import manual_corpus as mc

SPLITS = {"train": "train", "validation": "valid", "test": "test"}


def find_root(manual_dir: epath.Path, lang: str) -> epath.Path:
    return mc.find_root(manual_dir, (f"muavic/{lang}", lang, ""),
                        [f"{s}.tsv" for s in SPLITS.values()],
                        f"the MuAViC {lang} listings train.tsv, valid.tsv or test.tsv")


def resolve(lang_dir: epath.Path, root_line: str, value: str) -> epath.Path | None:
    """A tsv path column as a file here: as written, under the tsv root, or (when the corpus was
    moved) its `{audio,video}/<split>/<talk>/<file>` tail under the language folder."""
    if value.strip() in ("", "-1"):
        return None
    written = epath.Path(value)
    candidates = [written] if written.is_absolute() else [epath.Path(root_line) / value,
                                                          lang_dir / value]
    parts = written.parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in ("audio", "video"):
            candidates.append(lang_dir.joinpath(*parts[i:]))
            break
    for candidate in candidates:
        if candidate.exists():
            return candidate
    return candidates[-1]


def list_clips(lang_dir: epath.Path, lang: str) -> dict[str, list[mc.Clip]]:
    splits = {}
    for split, name in SPLITS.items():
        tsv = lang_dir / f"{name}.tsv"
        if not tsv.exists():
            continue
        lines = mc.read_utf8_lines(tsv)
        root_line = (lines[0] or "/").strip() if lines else "/"
        rows = [line.split("\t") for line in lines[1:] if line and line.strip()]
        text_path = mc.require(lang_dir / f"{name}.{lang}", f"the transcripts of {tsv.name}")
        texts = mc.read_utf8_lines(text_path)
        if len(texts) != len(rows):
            raise mc.LayoutError(f"{text_path} has {len(texts)} lines but {tsv} lists "
                                 f"{len(rows)} segments; expected one transcript per row.")
        clips = []
        for row, text in zip(rows, texts, strict=True):
            if len(row) < 3:
                raise mc.LayoutError(f"{tsv}: expected id, video, audio, video_frames, "
                                     f"audio_samples per row; found {row}.")
            video = resolve(lang_dir, root_line, row[1])
            audio = resolve(lang_dir, root_line, row[2])
            frames = row[3].strip() if len(row) > 3 else ""
            problem = mc.MISSING_FILE if video is None or audio is None or frames == "-1" else ""
            if text is None:
                problem = mc.NON_UTF8_TRANSCRIPT
            media = video or audio or lang_dir / row[0]
            clips.append(mc.Clip(id=row[0], speaker=media.parent.name, path=media,
                                 audio_path=audio, text=text or "", problem=problem))
        splits[split] = clips
    return splits
