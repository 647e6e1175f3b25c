"""TODO: the corpus: where it comes from, its licence, what the clips show.

The TFDS builder of this package, named after the package folder. It reads `manifest.csv`
(columns path, transcript, speaker, split; see data_builders/my_corpus/README.md) from the
manual_dir given to `python -m data_builders.<name> build --manual_dir DIR`.
"""

from data_builders.my_corpus import Builder as ManifestBuilder
from data_builders.my_corpus import MyCorpusConfig, config_name

from . import LANGUAGE

# TODO: acoustic units. The LMDecoder reads units and the lip reader queries them, so they must
# be the ids the stage-1 model was trained on: keep the stage-1 corpus's codebook (the synthetic
# corpus writes this one into the data_dir), or set UNITS_CODEBOOK = "" and UNITS_K = 100 to fit
# a codebook on this corpus's own train audio.
UNITS_CODEBOOK = "synthetic_lips_shared_k100"
UNITS_K = 0
# TODO: True if the videos are already 96x96 mouth crops at 25 fps (e.g. the mp4s written by
# `python -m lipjax.preprocess IN OUT --format mp4`): no face search at build time.
VIDEO_IS_ROI = False
MANIFEST = "manifest.csv"  # TODO: relative to --manual_dir, or an absolute path


def _config(with_video: bool) -> MyCorpusConfig:
    return MyCorpusConfig(
            name=config_name(LANGUAGE.code, with_video), language=LANGUAGE.code,
            with_video=with_video, video_is_roi=VIDEO_IS_ROI, manifest=MANIFEST,
            units_codebook=UNITS_CODEBOOK, units_k=UNITS_K,
            description=f"{LANGUAGE.name}, {'video + audio' if with_video else 'audio'}.")


class Builder(ManifestBuilder):
    """TODO: one line. `{code}_video` feeds stage 3, `{code}_audio` stages 2 and the tokenizer.

    A corpus with its own on-disk layout instead of a manifest: subclass
    data_builders.manual_corpus.ManualCorpusBuilder and implement find_root/list_clips (see
    data_builders/mls/mls_dataset_builder.py).
    """

    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    TODO: where the clips come from. Put them in a folder with manifest.csv (columns path,
    transcript, speaker, split) and pass it as --manual_dir.
    """
    # TODO: drop the video config for an audio-only corpus.
    BUILDER_CONFIGS = [_config(with_video=True), _config(with_video=False)]
