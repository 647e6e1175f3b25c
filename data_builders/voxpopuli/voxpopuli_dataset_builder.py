"""VoxPopuli transcribed speech: European Parliament speeches (Ogg Vorbis, 16 kHz), per language.

Layout: `transcribed_data/<lang>/asr_{train,dev,test}.tsv` with header `id raw_text
normalized_text speaker_id split gender is_gold_transcript accent`, audio at
`transcribed_data/<lang>/<year>/<id>.ogg` (year = the id's first four characters; ids contain
`:`). `normalized_text` can be empty; then `raw_text` is normalised instead. Splits: `train`,
`validation` (dev), `test`. Audio only.
"""

from __future__ import annotations

from etils import epath

from data_builders import manual_corpus as mc

LANGUAGES = ("en", "de", "fr", "es", "pl", "it", "ro", "hu", "cs", "nl", "fi", "hr", "sk", "sl",
             "et", "lt")
_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
_COLUMNS = ("id", "raw_text", "normalized_text", "speaker_id")


class Builder(mc.ManualCorpusBuilder):
    """VoxPopuli transcribed audio + text, one config per language."""

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Follow https://github.com/facebookresearch/voxpopuli ("Transcribed data"): download and
    segment the language's audio, which gives `transcribed_data/<lang>/asr_{train,dev,test}.tsv`
    and `transcribed_data/<lang>/<year>/<id>.ogg`; put `transcribed_data/` in `manual_dir`.
    """
    BUILDER_CONFIGS = [
            mc.ManualCorpusConfig(name=lang, language=lang, description=f"VoxPopuli {lang}.")
            for lang in LANGUAGES
    ]

    def find_root(self, manual_dir: epath.Path) -> epath.Path:
        lang = self.builder_config.language
        return mc.find_root(manual_dir, (f"transcribed_data/{lang}", lang, ""),
                            [f"asr_{s}.tsv" for s in _SPLITS.values()],
                            f"VoxPopuli {lang} lists asr_train.tsv, asr_dev.tsv or asr_test.tsv")

    def list_clips(self, root: epath.Path) -> dict[str, list[mc.Clip]]:
        return {split: list_split(root, name) for split, name in _SPLITS.items()
                if (root / f"asr_{name}.tsv").exists()}

    def split_source(self, root: epath.Path, split: str) -> str:
        return str(root / f"asr_{_SPLITS.get(split, split)}.tsv")


def list_split(root: epath.Path, name: str) -> list[mc.Clip]:
    tsv = root / f"asr_{name}.tsv"
    clips = []
    for line, row in mc.read_tsv(tsv, _COLUMNS):
        if row is None:
            clips.append(mc.Clip.unreadable(tsv, line))
            continue
        uid = row["id"]
        clips.append(mc.Clip(id=uid, speaker=row["speaker_id"],
                             path=root / uid[:4] / f"{uid}.ogg",
                             text=row["normalized_text"].strip() or row["raw_text"]))
    return clips
