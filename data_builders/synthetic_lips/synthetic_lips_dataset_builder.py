"""synthetic_lips: an audio-visual lip-reading corpus that lipjax generates itself.

Real lip corpora need licences and downloads; this one is synthesized (espeak-ng speech with the
synthesizer's own phone timings, a rendered 96x96 mouth following viseme targets), so the whole
pipeline runs anywhere. Configs `{lang}_video` (video + audio + text) and `{lang}_audio`
(audio + text), both with `frame_phonemes` (the phone sounding at each 25 Hz frame), for en,
es, fr, it, pt; it and pt video are low-resource on purpose.
Acoustic units come from ONE 100-unit codebook shared by all configs and languages, fitted on a
fixed multilingual sample and stored at `{data_dir}/units/synthetic_lips_shared_k100.npy`.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import tensorflow_datasets as tfds

from data_builders.features import clip_features
from data_builders.synthetic_lips import LANGUAGES, LOW_RESOURCE
from lipjax.synth import generate

log = logging.getLogger(__name__)

MODALITIES = ("video", "audio")
UNITS_K = 100
CODEBOOK_NAME = f"synthetic_lips_shared_k{UNITS_K}"


def demo_sizes(language: str, modality: str) -> dict[str, int]:
    """Examples per split of the demo corpus (generated in a few minutes on 2 cores)."""
    if modality == "audio":
        # Audio-text is the cheap data (no rendering): more sentences keep a decoder from
        # reciting its training sentences (experiments/results/README.md), and 2,000 keep the
        # demo's corpus step within minutes.
        return {"train": 2000, "validation": 100, "test": 100}
    return {"train": 120 if language in LOW_RESOURCE else 400, "validation": 40, "test": 60}


@dataclasses.dataclass(kw_only=True)
class SyntheticLipsConfig(tfds.core.BuilderConfig):
    """One language and modality; `sizes` = examples per split, `seed` = the whole corpus."""

    language: str = "en"
    modality: str = "video"
    sizes: dict[str, int] = dataclasses.field(default_factory=dict)
    seed: int = 0
    min_words: int = 3
    max_words: int = 7
    # Words are drawn from the language's `vocabulary_size` most frequent words: few enough that
    # the audio-text sentences show nearly every test word several times (a larger list leaves
    # most test words rare; experiments/results/README.md), so a CPU-sized LMDecoder can learn
    # the lexicon it is meant to hold.
    vocabulary_size: int = 300

    def __post_init__(self) -> None:
        if self.modality not in MODALITIES:
            raise ValueError(f"synthetic_lips config {self.name!r}: modality must be one of "
                             f"{MODALITIES}, found {self.modality!r}.")
        unknown = set(self.sizes) - set(generate.SPLITS)
        if unknown:
            raise ValueError(f"synthetic_lips config {self.name!r}: sizes has unknown splits "
                             f"{sorted(unknown)}; expected keys among {generate.SPLITS}.")


def make_config(language: str, modality: str, sizes: dict[str, int] | None = None,
                seed: int = 0, **kwargs) -> SyntheticLipsConfig:
    """Config `{language}_{modality}`, demo sizes unless `sizes` overrides some splits."""
    return SyntheticLipsConfig(
            name=f"{language}_{modality}",
            description=f"{language} {modality}: synthetic "
                        + ("mouth video, audio and text" if modality == "video" else "audio-text"),
            language=language, modality=modality,
            sizes={**demo_sizes(language, modality), **(sizes or {})}, seed=seed, **kwargs)


class Builder(tfds.core.GeneratorBasedBuilder):
    """Synthetic multilingual lip-reading clips (mouth video, 16 kHz speech, transcripts)."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "1.1.0": "Sentences from the 300 most frequent words (was 2,000).",
                     "2.0.0": "One speaker pool shared by all languages; validation and test "
                              "speakers never appear in train; frame_phonemes in audio configs "
                              "too; 2,000 audio-text sentences per language."}
    BUILDER_CONFIGS = [make_config(lang, m) for lang in LANGUAGES for m in MODALITIES]

    def __init__(self, *, sizes: dict[str, int] | None = None, seed: int | None = None,
                 file_format: str | tfds.core.FileFormat | None = None, **kwargs):
        """`sizes` (examples per split) and `seed` override the named config's, e.g. for tiny
        test corpora; TFDS forbids a custom config under a registered name, so they are kwargs.
        """
        # array_record: random access for grain, and writable without TensorFlow.
        super().__init__(file_format=file_format or "array_record", **kwargs)
        overrides = {}
        if sizes is not None:
            overrides["sizes"] = {**self._builder_config.sizes, **sizes}
        if seed is not None:
            overrides["seed"] = seed
        if overrides:
            self._builder_config = dataclasses.replace(self._builder_config, **overrides)

    def _info(self) -> tfds.core.DatasetInfo:
        video = self.builder_config.modality == "video"
        extra = {"frame_phonemes": tfds.features.Tensor(shape=(None,), dtype=np.int32)}
        return self.dataset_info_from_configs(
                features=clip_features(with_video=video, extra=extra),
                homepage="https://github.com/espeak-ng/espeak-ng",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # everything is generated
        centroids = shared_codebook(self.data_dir_root)
        return {split: self._generate_examples(split, n, centroids)
                for split, n in self.builder_config.sizes.items() if n > 0}

    def _generate_examples(self, split: str, num_clips: int, centroids: np.ndarray):
        cfg = self.builder_config
        clip_config = generate.ClipConfig(
                language=cfg.language, video=cfg.modality == "video", seed=cfg.seed,
                min_words=cfg.min_words, max_words=cfg.max_words, top_words=cfg.vocabulary_size)
        for clip in generate.generate(clip_config, split, num_clips, centroids):
            yield clip.key, clip.features


# Codebooks fitted in this process: the fit is deterministic, so another data_dir gets a copy.
_FITTED: dict[str, np.ndarray] = {}


def shared_codebook(data_dir) -> np.ndarray:
    """The corpus-wide unit codebook (K=100 centroids), fitted once per data_dir and cached."""
    from lipjax.units import acoustic, corpus_units

    path = corpus_units.codebook_path(data_dir, CODEBOOK_NAME)
    existed = path.exists()
    if not existed and CODEBOOK_NAME in _FITTED:
        acoustic.save_codebook(path, _FITTED[CODEBOOK_NAME])
        existed = True
    units = corpus_units.ensure_units(data_dir, CODEBOOK_NAME, UNITS_K,
                                      lambda: generate.codebook_sample(), seed=0)
    if not existed:
        _FITTED[CODEBOOK_NAME] = units.centroids
    return units.centroids
