"""my_corpus: a user's own clips (video or audio) listed in a manifest CSV, in any language.

The manifest (UTF-8, comma-separated, or tab-separated when it ends in `.tsv`) has a header line
with at least these columns; others are ignored:

    path,transcript,speaker,split
    spk1/0001.mp4,"Hallo, hoe gaat het?",spk1,train
    spk2/0007.mp4,Goedemorgen,spk2,validation

`path` is relative to the manifest's folder (or absolute); a video for video configs (any FFmpeg
format; faces are found and the mouth cropped by `lipjax.preprocess`), any audio or video file
for audio configs. `split` names the TFDS split (`dev`/`valid` are read as `validation`).
Transcripts are normalised with the config language's `Language.normalize`.

Use it through a config, constructed in code (`Builder(config=MyCorpusConfig(name="nl_video",
language="nl", manifest="manifest.csv", with_video=True))`) or from keyword arguments
(`Builder(language="nl", with_video=True)` names the config `nl_video`), or subclass `Builder`
with fixed `BUILDER_CONFIGS` in a package of your own (see data_builders/adding_a_language.md).
Rows that cannot become examples (missing or undecodable file, no face, empty transcript) are
skipped and counted per reason in the build log.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from typing import Any

from etils import epath

from data_builders import manual_corpus as mc
from lipjax.units import corpus_units

COLUMNS = ("path", "transcript", "speaker", "split")
SPLIT_ALIASES = {"dev": "validation", "valid": "validation", "val": "validation"}
_SPLIT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclasses.dataclass(eq=False)
class MyCorpusConfig(mc.ManualCorpusConfig):
    """A corpus of the user's own clips.

    Attributes:
        manifest: the manifest file, relative to manual_dir (or absolute).
        (from ManualCorpusConfig) language, with_video, units_k / units_codebook (acoustic units;
        reuse the stage-1 corpus's codebook, e.g. "synthetic_lips_shared_k100", so that the
        LMDecoder and the lip reader see the same unit ids), units_sample, units_seed.
    """

    manifest: str = "manifest.csv"


def config_name(language: str, with_video: bool) -> str:
    """The naming the training configs expect: `{lang}_video` / `{lang}_audio`."""
    return f"{language}_{'video' if with_video else 'audio'}"


def read_manifest(path: epath.Path) -> list[dict[str, str]]:
    """The manifest's rows (with their line number under `line`); a missing file, a header
    without the expected columns, or an unusable split name is an error naming the file."""
    mc.require(path, "the clip manifest (CSV with columns " + ",".join(COLUMNS) + ")")
    text = path.read_bytes().decode("utf-8-sig")  # tolerate the BOM spreadsheets write
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise mc.LayoutError(
                f"{path}: the header line must name the columns {', '.join(COLUMNS)} "
                f"(comma-separated{'; tab for .tsv' if delimiter == ',' else ''}); found "
                f"{header or 'no header'}, missing {', '.join(missing)}.")
    rows = []
    for line, raw in enumerate(reader, start=2):
        row = {k.strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        split = SPLIT_ALIASES.get(row["split"].lower(), row["split"])
        if not _SPLIT_NAME.fullmatch(split):
            raise mc.LayoutError(f"{path} line {line}: split must be a name such as train, "
                                 f"validation or test; found {row['split']!r}.")
        rows.append({**row, "split": split, "line": str(line)})
    return rows


class Builder(mc.ManualCorpusBuilder):
    """Clips listed in a manifest CSV -> lipjax clip features (video crops optional)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Put your clips under `manual_dir` with a `manifest.csv` (columns path, transcript, speaker,
    split; paths relative to the manifest) -- see data_builders/my_corpus/README.md.
    """
    BUILDER_CONFIGS: list[MyCorpusConfig] = []
    CONFIG_CLASS = MyCorpusConfig
    BUILD_ALL_CONFIGS = True  # a package's `python -m data_builders <name>` builds video + audio

    @classmethod
    def config_from_name(cls, name: str) -> MyCorpusConfig:
        """`<lang>_video` / `<lang>_audio` -> that config (what `--config nl_video` means)."""
        language, _, modality = name.rpartition("_")
        if not language or modality not in ("video", "audio"):
            raise ValueError(f"Config names of {cls.name} are <language>_video or "
                             f"<language>_audio (e.g. nl_video); found {name!r}.")
        return MyCorpusConfig(name=name, language=language, with_video=modality == "video",
                              description=f"Own {language} clips listed in a manifest.")

    def __init__(self, *, config: str | MyCorpusConfig | None = None,
                 language: str | None = None, with_video: bool = True,
                 manifest: str = "manifest.csv", video_is_roi: bool = False, units_k: int = 0,
                 units_codebook: str = "", **kwargs: Any) -> None:
        if config is None and language is not None:
            config = MyCorpusConfig(
                    name=config_name(language, with_video), language=language,
                    with_video=with_video, manifest=manifest, video_is_roi=video_is_roi,
                    units_k=units_k, units_codebook=units_codebook,
                    description=f"Own {language} clips listed in {manifest}.")
        if config is None and not self.BUILDER_CONFIGS:
            raise ValueError(f"{type(self).__name__} needs config=MyCorpusConfig(...) or "
                             "language='xx' (with with_video=, manifest=).")
        super().__init__(config=config, **kwargs)

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        manifest = epath.Path(self.builder_config.manifest)
        path = manifest if manifest.is_absolute() else manual_dir / manifest
        return mc.require(path, "the clip manifest", f"Set MyCorpusConfig.manifest or put "
                                                     f"{manifest.name} in manual_dir.")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        """`root` is the manifest file; clips in manifest order per split."""
        base = root.parent
        splits: dict[str, list[mc.Clip]] = {}
        seen: dict[str, str] = {}
        for row in read_manifest(root):
            rel = row["path"]
            if rel in seen:
                raise mc.LayoutError(f"{root} line {row['line']}: {rel} is already listed on "
                                     f"line {seen[rel]}; each clip must appear once.")
            seen[rel] = row["line"]
            path = epath.Path(rel)
            clip_id = str(path.with_suffix("")) if not path.is_absolute() else path.stem
            splits.setdefault(row["split"], []).append(mc.Clip(
                    id=clip_id, speaker=row["speaker"],
                    path=path if path.is_absolute() else base / rel, text=row["transcript"]))
        if not splits:
            raise mc.LayoutError(f"{root}: the manifest lists no clips.")
        return splits

    def codebook_name(self) -> str:
        """One codebook per corpus language (`<builder>_<lang>_k<K>`) shared by its video and
        audio configs: the lip reader (video) and the LMDecoder (audio) must agree on unit ids.
        Whichever config is built first fits it on its train audio."""
        config = self.builder_config
        return corpus_units.codebook_name(self.name, config.language, config.units_k)
