"""Mozilla Common Voice: crowd-read sentences (mostly 48 kHz MP3), per language.

Layout: `cv-corpus-<version>/<lang>/clips/common_voice_<lang>_<n>.mp3` with `train.tsv`,
`dev.tsv`, `test.tsv` beside `clips/`. Header columns differ between versions (v17 adds
`sentence_id`, `sentence_domain`), so columns are read by name. When several versions are
extracted, the newest (`cv-corpus-*` sorted by version) is used. Splits: `train`, `validation`
(dev), `test`. Audio only.
"""

from __future__ import annotations

import re

from etils import epath

from data_builders import manual_corpus as mc

LANGUAGES = ("en", "es", "fr", "it", "pt", "de", "nl", "pl", "ru", "el", "ar")
_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_COLUMNS = ("client_id", "path", "sentence")


def _version_key(path: epath.Path) -> tuple[float, ...]:
    return tuple(float(n) for n in re.findall(r"\d+(?:\.\d+)?", path.name)[:1]) or (0.0,)


class Builder(mc.ManualCorpusBuilder):
    """Common Voice audio + sentences, one config per language. Its TFDS name carries the
    project prefix: TFDS ships a `common_voice` dataset of its own, and both must open in one
    process."""

    name = "lipjax_common_voice"

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the language's archive from https://commonvoice.mozilla.org/datasets (sign-in
    required) and extract it into `manual_dir`, giving
    `manual_dir/cv-corpus-<version>/<lang>/{clips/,train.tsv,dev.tsv,test.tsv}`.
    """
    BUILDER_CONFIGS = [
            mc.ManualCorpusConfig(name=lang, language=lang, description=f"Common Voice {lang}.")
            for lang in LANGUAGES
    ]

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        lang = self.builder_config.language
        versions = sorted(manual_dir.glob("cv-corpus-*"), key=_version_key, reverse=True)
        candidates = [f"{v.name}/{lang}" for v in versions] + [lang, ""]
        return mc.find_root(manual_dir, candidates, [f"{s}.tsv" for s in _SPLITS.values()],
                            f"Common Voice {lang} split lists train.tsv, dev.tsv or test.tsv")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        return {split: list_split(root, name) for split, name in _SPLITS.items()
                if (root / f"{name}.tsv").exists()}

    def split_source(self, root: epath.Path, split: str) -> str:
        return str(root / f"{_SPLITS.get(split, split)}.tsv")


def list_split(root: epath.Path, name: str) -> list[mc.Clip]:
    tsv = root / f"{name}.tsv"
    clips = []
    for line, row in mc.read_tsv(tsv, _COLUMNS):
        if row is None:
            clips.append(mc.Clip.unreadable(tsv, line))
            continue
        clip_path = root / "clips" / row["path"]
        clips.append(mc.Clip(id=clip_path.stem, speaker=row["client_id"], path=clip_path,
                             text=row["sentence"]))
    return clips
