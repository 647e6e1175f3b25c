"""Multilingual LibriSpeech (MLS): read audiobook speech with transcripts, per language.

Layout: `mls_<language>/` (flac) or `mls_<language>_opus/` holding
`{train,dev,test}/transcripts.txt` (`<spk>_<book>_<n>\\t<text>`) and
`{split}/audio/<spk>/<book>/<spk>_<book>_<n>.{flac,opus}`. The limited-supervision subsets
(`train/limited_supervision/9hr/handles.txt`, `1hr/<k>/handles.txt`) are selected with
`train_subset`. Splits: `train`, `validation` (dev), `test`. Audio only.
"""

from __future__ import annotations

import dataclasses

from etils import epath

from data_builders import manual_corpus as mc

LANGUAGES = {"en": "english", "de": "german", "nl": "dutch", "fr": "french", "es": "spanish",
             "it": "italian", "pt": "portuguese", "pl": "polish"}
_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


@dataclasses.dataclass(eq=False)
class MlsConfig(mc.ManualCorpusConfig):
    """`train_subset`: "" (all train), "9hr", or "1hr" (the six 10-minute folds together)."""

    train_subset: str = ""


class Builder(mc.ManualCorpusBuilder):
    """MLS audio + transcripts, one config per language (plus 9h/1h train subsets)."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download `mls_<language>.tar.gz` (flac) or `mls_<language>_opus.tar.gz` from
    https://www.openslr.org/94/ and extract it into `manual_dir`, giving
    `manual_dir/mls_spanish/{train,dev,test}/transcripts.txt` and `.../audio/`.
    """
    BUILDER_CONFIGS = [
            MlsConfig(name=f"{code}{suffix}", language=code, train_subset=subset,
                      description=f"MLS {name}" + (f", {subset} train subset" if subset else ""))
            for code, name in LANGUAGES.items()
            for suffix, subset in (("", ""), ("_9hr", "9hr"), ("_1hr", "1hr"))
    ]

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        name = LANGUAGES.get(self.builder_config.language, self.builder_config.language)
        return mc.find_root(manual_dir, (f"mls_{name}", f"mls_{name}_opus", ""),
                            [f"{s}/transcripts.txt" for s in _SPLITS.values()],
                            f"MLS {name} transcripts <split>/transcripts.txt")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        ext = ".opus" if root.name.endswith("_opus") else ".flac"
        splits = {split: list_split(root / name, ext) for split, name in _SPLITS.items()
                  if (root / name).exists()}
        subset = self.builder_config.train_subset
        if subset and "train" in splits:
            keep = _handles(root / "train" / "limited_supervision", subset)
            splits["train"] = [c for c in splits["train"] if c.id in keep]
        return splits

    def split_source(self, root: epath.Path, split: str) -> str:
        return str(root / _SPLITS.get(split, split) / "transcripts.txt")


def list_split(split_dir: epath.Path, ext: str) -> list[mc.Clip]:
    transcripts = mc.require(split_dir / "transcripts.txt", "the MLS transcripts")
    clips = []
    for n, line in enumerate(mc.read_utf8_lines(transcripts), start=1):
        if line is None:
            clips.append(mc.Clip.unreadable(transcripts, n))
            continue
        if not line.strip():
            continue
        uid, _, text = line.partition("\t")
        parts = uid.split("_")
        if len(parts) != 3:
            raise mc.LayoutError(f"{transcripts} line {n}: expected `<speaker>_<book>_<n>\\t"
                                 f"<text>`, found {line[:80]!r}.")
        path = split_dir / "audio" / parts[0] / parts[1] / f"{uid}{ext}"
        clips.append(mc.Clip(id=uid, speaker=parts[0], path=path, text=text))
    return clips


def _handles(limited: epath.Path, subset: str) -> set[str]:
    files = ([limited / "9hr" / "handles.txt"] if subset == "9hr"
             else sorted((limited / "1hr").glob("*/handles.txt")))
    if subset not in ("9hr", "1hr"):
        raise ValueError(f"train_subset must be '', '9hr' or '1hr'; got {subset!r}.")
    if not files or not files[0].exists():
        raise mc.LayoutError(f"Expected the {subset} subset lists (handles.txt) under {limited}.")
    return {line.strip() for f in files for line in f.read_text().splitlines() if line.strip()}
