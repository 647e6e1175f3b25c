"""The LMDecoders' text vocabulary is the tokenizer's size (models/factory.text_vocab_origin):
read in stages 2 and 3, an explicit model.text_vocab that disagrees is an error naming both sizes,
and a stage-2 checkpoint of another tokenizer is refused naming the checkpoint and the
tokenizer.

Models are built abstractly (`nnx.eval_shape`), or with zero weights where a checkpoint is
written or read: only their shapes matter here, and initialising even the tiny size takes long
on a busy CPU.
"""

from __future__ import annotations

import json

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from configs import finetune as finetune_config
from configs import lmdecoder as lmdecoder_config
from lipjax import languages
from lipjax.models import factory
from lipjax.tasks import finetune, get_task
from lipjax.tasks.common import WEIGHTS
from lipjax.units import tokenizer

TEXTS = {
        "es": ["el niño come pan", "la señora canta bien", "qué tal estás hoy",
               "una canción de la región", "el pingüino nada rápido"] * 4,
        "it": ["il gatto mangia", "la città è bella", "perché no"] * 4,
}


def _tokenizer(data_dir, lang: str, vocab: int) -> tuple[str, int]:
    path = languages.get(lang).tokenizer_path(data_dir)
    trained = tokenizer.train_verified(TEXTS[lang], path, vocab,
                                       alphabet=languages.get(lang).alphabet)
    return str(path), trained.pieces


def _stage2(data_dir, lang: str = "es") -> ml_collections.ConfigDict:
    return lmdecoder_config.get_config(f"tiny,lang={lang},data_dir={data_dir}")


def _abstract(config: ml_collections.ConfigDict) -> nnx.Module:
    return nnx.eval_shape(lambda: get_task(config.task).create_model(config, nnx.Rngs(0)))


def _zeros(config: ml_collections.ConfigDict) -> nnx.Module:
    """The task's model with every array zero (random keys included)."""
    graphdef, state = nnx.split(_abstract(config))

    def zero(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.zeros((*x.shape, 2), np.uint32))
        return np.zeros(x.shape, x.dtype)

    return nnx.merge(graphdef, jax.tree.map(zero, state))


def _sizes(model, code: str) -> set[int]:
    lm = model.decoders.lmdecoders[code]
    return {lm.ctc.out_features, lm.decoder.logits.out_features, lm.decoder.embed.num_embeddings}


def test_stage2_model_reads_the_tokenizer_size(tmp_path):
    path, pieces = _tokenizer(tmp_path, "es", 60)
    assert pieces != factory.DEFAULTS["text_vocab"]
    config = _stage2(tmp_path)
    assert config.model.text_vocab == 0  # nothing set by hand
    model = _abstract(config)
    assert _sizes(model, "es") == {pieces}
    assert factory.get(config, "text_vocab") == pieces  # what FLOP counts and benchmarks read
    assert model.decoders.text_vocab_origin == f"the tokenizer {path} ({pieces} pieces)"


def test_explicit_text_vocab_that_disagrees_is_an_error(tmp_path):
    path, pieces = _tokenizer(tmp_path, "es", 60)
    config = _stage2(tmp_path)
    config.model.text_vocab = 1000
    with pytest.raises(ValueError) as e:
        _abstract(config)
    message = str(e.value)
    assert "config model.text_vocab=1000" in message
    assert f"the tokenizer {path} ({pieces} pieces)" in message
    assert f"must have {pieces} outputs" in message
    config.model.text_vocab = pieces  # agreeing is fine
    assert _sizes(_abstract(config), "es") == {pieces}


def test_missing_tokenizer_names_where_and_how(tmp_path):
    config = _stage2(tmp_path)
    with pytest.raises(ValueError) as e:
        factory.text_vocab(config)
    assert str(languages.get("es").tokenizer_path(tmp_path)) in str(e.value)
    assert "python -m data_builders tokenizer es --sources" in str(e.value)
    # No tokenizer and no data to find one in (random-batch benchmarks): the explicit size.
    bare = ml_collections.ConfigDict({"model": factory.model_config("tiny", text_vocab=20)})
    assert factory.text_vocab(bare) == 20


def test_several_languages_each_keep_their_tokenizer(tmp_path):
    es_path, es_pieces = _tokenizer(tmp_path, "es", 60)
    config = _stage2(tmp_path)
    config.model.languages = ["es", "it"]
    with pytest.raises(ValueError, match=r"no tokenizer at .*it\.model"):
        factory.text_vocab(config)
    it_path, it_pieces = _tokenizer(tmp_path, "it", 45)
    assert it_pieces < es_pieces
    model = _abstract(config)
    # Each LMDecoder is its own language's size (a stage-2 run of one language loads);
    # the reader's text outputs are the largest.
    assert _sizes(model, "es") == {es_pieces} and _sizes(model, "it") == {it_pieces}
    assert factory.text_vocab(config) == model.decoders.text_vocab == es_pieces
    origin = model.decoders.text_vocab_origin
    assert f"{es_path} ({es_pieces} pieces)" in origin and f"{it_path} ({it_pieces}" in origin


def _save_stage2(workdir, data_dir) -> int:
    """A stage-2 run in the trainer's layout (checkpoint + config.json); its vocabulary."""
    config = _stage2(data_dir)
    model = _zeros(config)
    with ocp.CheckpointManager(workdir / "checkpoints") as manager:
        state = {"model": nnx.state(model, WEIGHTS).to_pure_dict(), "step": 3}
        manager.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
        manager.wait_until_finished()
    (workdir / "config.json").write_text(json.dumps(config.to_dict()))
    return factory.text_vocab(config)


def test_stage3_refuses_a_stage2_checkpoint_of_another_tokenizer(tmp_path):
    old_data, new_data, stage2 = tmp_path / "old", tmp_path / "new", tmp_path / "lmdecoder_es"
    _, old_pieces = _tokenizer(old_data, "es", 60)
    assert _save_stage2(stage2, old_data) == old_pieces

    def stage3(data_dir):
        config = finetune_config.get_config(f"tiny,lang=es,init=noread,data_dir={data_dir}")
        config.init.encoder = ""  # the text layer is what this test is about
        config.init.lmdecoder = str(stage2)
        model = _zeros(config)
        finetune.load_pretrained(model, config)
        return model

    assert _sizes(stage3(old_data), "es") == {old_pieces}  # the same tokenizer loads
    new_path, new_pieces = _tokenizer(new_data, "es", 45)
    assert new_pieces != old_pieces
    with pytest.raises(ValueError) as e:
        stage3(new_data)
    message = str(e.value)
    assert f"the checkpoint {stage2} has a text vocabulary of {old_pieces} pieces" in message
    assert f"this model's is {new_pieces}, from the tokenizer {new_path}" in message
    assert f"its run read data.data_dir={old_data}" in message
