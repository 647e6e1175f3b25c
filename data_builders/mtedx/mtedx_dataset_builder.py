"""Multilingual TEDx (mTEDx) speech recognition data, and its MuAViC audio-visual preparation.

`<lang>_audio` configs read mTEDx as distributed: talk-level `.flac` files cut into segments by
`data/<split>/txt/<split>.yaml` (offset, duration), with one transcript line per segment in
`<split>.<lang>`. `<lang>_video` configs read the MuAViC layout (`muavic_layout.py`), whose videos
are already 96x96 mouth crops. Config names match the synthetic corpus (`es_video`, `es_audio`).
"""

from __future__ import annotations

import re

from etils import epath

from data_builders import manual_corpus as mc
from data_builders.mtedx import muavic_layout
from lipjax.units import corpus_units

AUDIO_LANGS = ("es", "fr", "it", "pt", "ru", "el", "ar", "de")
VIDEO_LANGS = ("en",) + AUDIO_LANGS
_SPLITS = {"train": "train", "validation": "valid", "test": "test"}
_YAML_FIELD = re.compile(r"(\w+):\s*([^,{}]+)")


def parse_yaml_line(line: str) -> dict[str, str]:
    """`- {duration: 0.47, offset: 17.22, speaker_id: x, wav: x.wav}` -> its fields."""
    return {k: v.strip() for k, v in _YAML_FIELD.findall(line)}


class Builder(mc.ManualCorpusBuilder):
    """mTEDx segments (audio + text) and MuAViC mouth-crop videos, one config per language."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Audio configs (`<lang>_audio`): download `mtedx_<lang>.tgz` from https://www.openslr.org/100/
    and extract it into `manual_dir`, giving `mtedx/<lang>-<lang>/data/{train,valid,test}/` with
    `txt/<split>.yaml`, `txt/<split>.<lang>`, `txt/segments` and `wav/<talk>.flac` (the `mtedx/`
    level may be omitted).
    Video configs (`<lang>_video`): prepare MuAViC with its scripts
    (https://github.com/facebookresearch/muavic) and put the output for the language at
    `manual_dir/muavic/<lang>/` ({train,valid,test}.tsv, {split}.<lang>, audio/, video/).
    """
    BUILDER_CONFIGS = [
            mc.ManualCorpusConfig(name=f"{lang}_audio", language=lang,
                                  description=f"mTEDx {lang}: talk audio cut into segments.")
            for lang in AUDIO_LANGS
    ] + [
            mc.ManualCorpusConfig(name=f"{lang}_video", language=lang, with_video=True,
                                  video_is_roi=True,
                                  description=f"MuAViC {lang}: 96x96 mouth crops + audio.")
            for lang in VIDEO_LANGS
    ]

    def codebook_name(self) -> str:
        """`mtedx_<lang>_k<K>`: one codebook for both configs of a language, fitted by whichever
        is built first, so stage-1 targets (`_video`) and the LMDecoder (`_audio`) share units."""
        config = self.builder_config
        return corpus_units.codebook_name(self.name, config.language, config.units_k)

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        lang = self.builder_config.language
        if self.builder_config.with_video:
            return muavic_layout.find_root(manual_dir, lang)
        pair = f"{lang}-{lang}"
        return mc.find_root(manual_dir, (f"mtedx/{pair}", pair, ""),
                            [f"data/{s}/txt/{s}.yaml" for s in _SPLITS.values()],
                            f"mTEDx {pair} segment lists data/<split>/txt/<split>.yaml")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        lang = self.builder_config.language
        if self.builder_config.with_video:
            return muavic_layout.list_clips(root, lang)
        return {split: list_split(root / "data" / name, name, lang)
                for split, name in _SPLITS.items() if (root / "data" / name).exists()}

    def split_source(self, root: epath.Path, split: str) -> str:
        name = _SPLITS.get(split, split)
        if self.builder_config.with_video:
            return str(root / f"{name}.tsv")
        return str(root / "data" / name / "txt" / f"{name}.yaml")


def list_split(split_dir: epath.Path, name: str, lang: str) -> list[mc.Clip]:
    """Segments of one mTEDx split, in listing order (segments of a talk stay together)."""
    txt = split_dir / "txt"
    yaml_path = mc.require(txt / f"{name}.yaml", "the segment list")
    entries = [parse_yaml_line(line) for line in yaml_path.read_text().splitlines()
               if line.strip().startswith("-")]
    text_path = mc.require(txt / f"{name}.{lang}", "the transcripts")
    texts = mc.read_utf8_lines(text_path)
    if len(texts) != len(entries):
        raise mc.LayoutError(f"{text_path} has {len(texts)} lines but {yaml_path} lists "
                             f"{len(entries)} segments; expected one transcript per segment.")
    ids = _segment_ids(txt / "segments", entries)
    clips = []
    for entry, text, seg_id in zip(entries, texts, ids, strict=True):
        if not {"offset", "duration", "wav"} <= set(entry):
            raise mc.LayoutError(f"{yaml_path}: expected duration, offset and wav in every "
                                 f"entry; found {sorted(entry)}.")
        talk = entry["wav"].rsplit(".", 1)[0]
        start = float(entry["offset"])
        clips.append(mc.Clip(id=seg_id, speaker=entry.get("speaker_id", talk),
                             path=_talk_audio(split_dir / "wav", talk), text=text or "",
                             start=start, end=start + float(entry["duration"]),
                             problem="" if text is not None else mc.NON_UTF8_TRANSCRIPT))
    return clips


def _segment_ids(segments: epath.Path, entries: list[dict[str, str]]) -> list[str]:
    """Ids from the `segments` file (`<talk>_0000 <talk> start end`), else `<talk>_<n>`."""
    if segments.exists():
        ids = [line.split()[0] for line in segments.read_text().splitlines() if line.strip()]
        if len(ids) == len(entries):
            return ids
    counts: dict[str, int] = {}
    ids = []
    for entry in entries:
        talk = entry["wav"].rsplit(".", 1)[0]
        ids.append(f"{talk}_{counts.get(talk, 0):04d}")
        counts[talk] = counts.get(talk, 0) + 1
    return ids


def _talk_audio(wav_dir: epath.Path, talk: str) -> epath.Path:
    """The talk's audio file: `.flac` as distributed (the yaml may say `.wav`)."""
    for ext in (".flac", ".wav"):
        if (wav_dir / f"{talk}{ext}").exists():
            return wav_dir / f"{talk}{ext}"
    return wav_dir / f"{talk}.flac"
