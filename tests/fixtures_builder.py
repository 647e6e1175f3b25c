"""A tiny real TFDS corpus for the data tests: the `clip_features` schema, two languages, video
and audio-text configs, written as array_record, plus tokenizers trained on its text.

Building it takes a few seconds, so `tiny_data_dir()` builds once per test process and caches it.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from lipjax.data.features import SAMPLES_PER_FRAME, clip_features
from lipjax.units import tokenizer

BUILDER = "lipjax_fixture"
LANGS = ("en", "es")
WORDS = {
        "en": "the cat sat on a mat dog ran far away big red sun house tree".split(),
        "es": "el gato come una casa perro rojo sol grande agua mar luz".split(),
}
SIZES = {  # (config, split) -> examples; odd sizes exercise eval padding
        "video": {"train": 30, "validation": 9, "test": 5},
        "audio": {"train": 24, "validation": 7, "test": 5},
}
MIN_FRAMES, MAX_FRAMES = 12, 90


def example(lang: str, modality: str, split: str, i: int) -> dict:
    """Deterministic example `i`; its video frames are random but its length, text and units are
    recoverable from the id, so tests can check what came out of the pipeline."""
    seed = [LANGS.index(lang), ("video", "audio").index(modality), ("train", "validation",
                                                                      "test").index(split), i]
    rng = np.random.default_rng(seed)
    frames = int(rng.integers(MIN_FRAMES, MAX_FRAMES + 1))
    words = rng.choice(WORDS[lang], size=int(rng.integers(2, 7)))
    text = " ".join(words)
    units = rng.integers(0, 20, size=frames).astype(np.int32)
    units[1::3] = units[::3][: len(units[1::3])]  # some consecutive repeats to dedup
    ex = {
            "id": f"{lang}_{modality}_{split}_{i:04d}",
            "language": lang,
            "speaker": f"spk{i % 3}",
            "text": text,
            "phonemes": " | ".join(" ".join(w) for w in words),
            "phoneme_ids": rng.integers(2, 40, size=len(text)).astype(np.int32),
            "units": units,
            "audio": rng.integers(-3000, 3000, size=frames * SAMPLES_PER_FRAME).astype(np.int16),
    }
    if modality == "video":
        small = rng.integers(0, 256, size=(frames, 12, 12)).astype(np.uint8)
        ex["video"] = np.repeat(np.repeat(small, 8, axis=1), 8, axis=2)
    return ex


class LipjaxFixture(tfds.core.GeneratorBasedBuilder):
    """Two languages x {video, audio} of random clips in the lipjax clip schema."""

    VERSION = tfds.core.Version("1.0.0")
    BUILDER_CONFIGS = [tfds.core.BuilderConfig(name=f"{lang}_{m}") for lang in LANGS
                       for m in ("video", "audio")]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
                features=clip_features(with_video=self.builder_config.name.endswith("_video")))

    def _split_generators(self, dl_manager):
        del dl_manager
        lang, modality = self.builder_config.name.split("_")
        return {split: self._generate_examples(lang, modality, split, n)
                for split, n in SIZES[modality].items()}

    def _generate_examples(self, lang: str, modality: str, split: str, n: int):
        for i in range(n):
            ex = example(lang, modality, split, i)
            yield ex["id"], ex


def build(data_dir: str, langs: tuple[str, ...] = LANGS,
          modalities: tuple[str, ...] = ("video", "audio"), tokenizers: bool = True) -> str:
    """Writes the fixture configs (and a tokenizer per language) into data_dir."""
    tfds.disable_progress_bar()
    for lang in langs:
        for modality in modalities:
            builder = LipjaxFixture(config=f"{lang}_{modality}", data_dir=data_dir,
                                    file_format="array_record")
            builder.download_and_prepare()
        if not tokenizers:
            continue
        texts = [example(lang, m, "train", i)["text"] for m in ("video", "audio")
                 for i in range(SIZES[m]["train"])]
        from lipjax import languages

        tokenizer.train_tokenizer(texts, languages.get(lang).tokenizer_path(data_dir),
                                  vocab_size=1000)
    return data_dir


_CACHE: dict[str, str] = {}


def tiny_data_dir() -> str:
    """The fixture corpus, built once per process in a temporary directory."""
    if "dir" not in _CACHE:
        root = tempfile.mkdtemp(prefix="lipjax_fixture_")
        _CACHE["dir"] = build(os.path.join(root, "data"))
    return _CACHE["dir"]


def multiprocess_worker(data_dir: str, process_id: int, port: int, out_path: str) -> None:
    """One of two JAX processes (2 CPU devices each) reading the fixture corpus; writes what it
    saw as JSON so the test can compare the processes."""
    import json

    import jax
    import ml_collections

    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                               process_id=process_id)
    from lipjax.data import pipeline, sharding

    cfg = ml_collections.ConfigDict(dict(
            builder=BUILDER, data_dir=data_dir, sources=[("en_video", 1.0), ("es_video", 1.0)],
            batch_size=8, frame_buckets=(32, 64, 96), max_frames=96, token_bucket=8,
            time_masks=1, time_mask_frames=4, num_workers=0))
    mesh = jax.make_mesh((4,), ("data",))
    train = pipeline.make_loader(cfg, "train", train=True, seed=0, mesh=mesh)
    local_frames, global_shapes = [], []
    for _ in range(6):
        batch = next(train)
        local_frames.append(batch["video"].shape[1])
        arrays = sharding.to_global(batch, mesh)
        global_shapes.append({k: list(v.shape) for k, v in sorted(arrays.items())})
    evaluation = pipeline.make_loader(cfg, "validation", train=False, seed=0, mesh=mesh)
    ids = []
    for batch in evaluation:
        sharding.to_global(batch, mesh)
        ids += [i for i, v in zip(batch["id"], batch["valid"], strict=True) if v]
    with open(out_path, "w") as f:
        json.dump({"local_frames": local_frames, "global_shapes": global_shapes,
                   "eval_batches": len(evaluation), "eval_ids": ids}, f)
    jax.distributed.shutdown()
