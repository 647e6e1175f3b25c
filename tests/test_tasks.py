"""The three tasks on a random batch shaped like the input pipeline's, end to end: loss and
gradients, greedy eval_step, host metrics with a real SentencePiece model, and loading stage-1
and stage-2 weights from real Orbax checkpoints in the trainer's layout."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from lipjax import languages
from lipjax.metrics import cer, error_rate, wer
from lipjax.models import factory
from lipjax.tasks import get_task, units_pretrain
from lipjax.tasks.common import WEIGHTS, ids_to_text
from lipjax.units.phonemes import WORD_ID
from lipjax.units.tokenizer import train_tokenizer

B, T, HW, P, U, L = 2, 10, 24, 6, 7, 5
UNITS, VOCAB = 12, 64
TEXTS = ["hola mundo", "buenos dias amigo", "la casa es grande", "el perro come pan",
         "una mesa roja", "me gusta leer libros"] * 4


def _config(task, tmp_path, **model):
    model = factory.model_config("tiny", unit_vocab=UNITS, languages=("es",), **model)
    return ml_collections.ConfigDict({
        "task": task, "model": model, "train": {"dtype": "float32", "remat": False},
        "loss": {"lid_weight": 0.1, "ctc_weight": 0.1, "label_smoothing": 0.1,
                 "token_dropout": 0.2},
        "decoding": {"beam_size": 3, "decode_ctc_weight": 0.3, "length_penalty": 0.0,
                     "max_decode_len": 0},
        "data": {"data_dir": str(tmp_path)}, "init": {}})


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    mask = lambda n, lens: np.arange(n)[None] < np.array(lens)[:, None]
    vm = mask(T, [T, T - 3])
    return {
        "video": rng.normal(size=(B, T, HW, HW)).astype(np.float32), "video_mask": vm,
        "units": rng.integers(0, UNITS, (B, T)).astype(np.int32), "frame_mask": vm,
        "dedup_units": rng.integers(0, UNITS, (B, U)).astype(np.int32),
        "dedup_units_mask": mask(U, [U, 4]),
        "phoneme_ids": rng.integers(1, UNITS, (B, P)).astype(np.int32),
        "phoneme_mask": mask(P, [P, 3]),
        "tokens": rng.integers(4, 30, (B, L)).astype(np.int32), "token_mask": mask(L, [L, 2]),
        "language": np.full((B,), languages.index("es"), np.int32),
        "id": np.array(["a", "b"], object), "text": np.array(TEXTS[:B], object),
    }


def _device(batch):
    return {k: jnp.asarray(v) for k, v in batch.items() if v.dtype != object}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    sp = train_tokenizer(TEXTS, languages.get("es").tokenizer_path(d), vocab_size=40)
    assert sp.get_piece_size() <= VOCAB
    return d


@functools.cache
def _jitted_eval(task):
    """One jitted eval step per task, shared by the tests (a model of the same structure and
    settings compiles once)."""
    return nnx.jit(task.eval_step, static_argnames="settings")


@functools.cache
def _jitted_loss(task, settings):
    return nnx.jit(nnx.value_and_grad(
            lambda m, b: task.loss_fn(m, b, nnx.Rngs(1), settings), has_aux=True))


def _eval_step(task, model, batch, settings):
    return jax.tree.map(np.asarray, _jitted_eval(task)(model, batch, settings=settings))


def _run(task_name, config, with_outputs=False):
    task = get_task(task_name)
    settings = task.settings(config)
    model = task.create_model(config, nnx.Rngs(0))
    model.train()
    host = _batch()
    batch = _device(host)
    (loss, metrics), grads = _jitted_loss(task, settings)(model, batch)
    assert np.isfinite(float(loss)) and float(metrics["loss"]) == float(loss)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grads))
    model.eval()
    out = _eval_step(task, model, batch, settings)
    result = task.eval_metrics([out], [host], config)
    return (model, result, out, host) if with_outputs else (model, result)


def _texts(out, host, key, data_dir):
    """(references, hypotheses) decoded by hand from the batch and the eval outputs."""
    refs = [languages.get("es").normalize(t) for t in host["text"]]
    hyps = [ids_to_text(out[key][i], int(out[f"{key}_len"][i]), "es", str(data_dir))
            for i in range(B)]
    return refs, hyps


@pytest.mark.parametrize("unit_type", ["phoneme", "acoustic"])
def test_units_pretrain(unit_type, tmp_path):
    _, result, out, host = _run("units_pretrain",
                                _config("units_pretrain", tmp_path, unit_type=unit_type),
                                with_outputs=True)
    # The metrics, recomputed from the outputs: references are the batch's phone sequences
    # without word boundaries (phonemes) or its repeats-removed units (acoustic).
    if unit_type == "phoneme":
        ids, mask = host["phoneme_ids"], host["phoneme_mask"]
        refs = [[int(u) for u in row[m] if u != WORD_ID] for row, m in zip(ids, mask, strict=True)]
        hyps = [[int(u) for u in out["units"][i, :out["units_len"][i]] if u != WORD_ID]
                for i in range(B)]
    else:
        ids, mask = host["dedup_units"], host["dedup_units_mask"]
        refs = [[int(u) for u in row[m]] for row, m in zip(ids, mask, strict=True)]
        hyps = [[int(u) for u in out["units"][i, :out["units_len"][i]]] for i in range(B)]
    assert set(result) == ({"per", "ver", "lid_accuracy"} if unit_type == "phoneme"
                           else {"per", "lid_accuracy"})
    assert result["per"] == pytest.approx(error_rate(refs, hyps))
    assert result["lid_accuracy"] == pytest.approx(np.mean(out["lid"] == host["language"]))


@pytest.mark.slow  # five compiled steps of three tasks: `make test-slow` (CI runs it)
def test_lmdecoder_and_finetune_load_stages(data_dir, tmp_path):
    stage1, _ = _run("units_pretrain", _config("units_pretrain", data_dir))
    stage2, result, out, host = _run("lmdecoder",
                                     _config("lmdecoder", data_dir, unit_type="acoustic"),
                                     with_outputs=True)
    assert set(result) == {"wer", "cer", "wer_ctc"}
    refs, hyps = _texts(out, host, "tokens", data_dir)
    _, ctc_hyps = _texts(out, host, "ctc_tokens", data_dir)
    assert result["wer"] == pytest.approx(wer(refs, hyps))
    assert result["cer"] == pytest.approx(cer(refs, hyps))
    assert result["wer_ctc"] == pytest.approx(wer(refs, ctc_hyps))
    for name, model in (("s1", stage1), ("s2", stage2)):
        with ocp.CheckpointManager(tmp_path / name / "checkpoints") as mngr:
            state = {"model": nnx.state(model, WEIGHTS).to_pure_dict(), "step": 3}
            mngr.save(3, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
            mngr.wait_until_finished()

    config = _config("finetune", data_dir, unit_type="acoustic")
    config.init = {"encoder": str(tmp_path / "s1"), "lmdecoder": str(tmp_path / "s2")}
    finetune = get_task("finetune")
    model = finetune.create_model(config, nnx.Rngs(7))
    finetune.load_pretrained(model, config)
    got = nnx.state(model, WEIGHTS).to_pure_dict()
    want1 = nnx.state(stage1, WEIGHTS).to_pure_dict()
    want2 = nnx.state(stage2, WEIGHTS).to_pure_dict()
    for a, b in ((got["visual"], want1["visual"]), (got["decoders"], want2["decoders"])):
        jax.tree.map(np.testing.assert_array_equal, a, b)

    _, result, out, host = _run("finetune", config, with_outputs=True)
    refs, hyps = _texts(out, host, "tokens", data_dir)
    assert set(result) == {"wer", "cer", "wer_ctc"}
    assert result["wer"] == pytest.approx(wer(refs, hyps))

    # Ablation (c): the stage-2 LMDecoder's weights, no memory read.
    config_c = _config("finetune", data_dir, unit_type="acoustic", memory_addressing="none")
    config_c.init = dict(config.init)
    model_c = finetune.create_model(config_c, nnx.Rngs(8))
    finetune.load_pretrained(model_c, config_c)
    assert model_c.memory_read is None
    jax.tree.map(np.testing.assert_array_equal,
                 nnx.state(model_c, WEIGHTS).to_pure_dict()["decoders"], want2["decoders"])

    # Posterior addressing: the stage-1 unit head (loaded) weights the memory slots.
    config_p = _config("finetune", data_dir, unit_type="acoustic",
                       memory_addressing="posterior")
    config_p.init = {**config.init, "unit_head": str(tmp_path / "s1")}
    model_p = finetune.create_model(config_p, nnx.Rngs(9))
    finetune.load_pretrained(model_p, config_p)
    jax.tree.map(np.testing.assert_array_equal,
                 nnx.state(model_p, WEIGHTS).to_pure_dict()["unit_head"], want1["unit_head"])
    model_p.eval()
    batch = _device(_batch())
    weights = model_p.memory_attention(batch["video"], batch["video_mask"], "es")
    logits = model_p.unit_head(model_p.visual(batch["video"], batch["video_mask"]))
    assert weights.shape == (B, 1, T, UNITS)
    # Both sides are one softmax of the same float32 logits: equal up to float32 rounding.
    np.testing.assert_allclose(weights[:, 0], jax.nn.softmax(logits, -1), rtol=1e-6, atol=1e-7)
    # A temperature divides the logits: sharper weights, the same most-read slot.
    model_p.memory_read.temperature = 0.1
    sharp = model_p.memory_attention(batch["video"], batch["video_mask"], "es")
    # 1/0.1 scales a logit's float32 rounding (~1e-6 at |logit| ~ 10) to ~1e-5 in the exponent.
    np.testing.assert_allclose(sharp[:, 0], jax.nn.softmax(logits / 0.1, -1), rtol=1e-4,
                               atol=1e-6)
    assert (sharp.max(-1) >= weights.max(-1) - 1e-6).all()
    model_p.memory_read.temperature = 1.0
    _, result, out, host = _run("finetune", config_p, with_outputs=True)
    refs, hyps = _texts(out, host, "tokens", data_dir)
    assert result["cer"] == pytest.approx(cer(refs, hyps))


def test_units_pretrain_on_frame_phonemes(tmp_path):
    """phoneme_targets='frames': frame CE on the phone of each frame; decoding merges repeats
    and drops silence (id 0) and padding, so frames [0 5 5 0 7 7 7 3 0 3] read as [5 7 3 3]."""
    config = _config("units_pretrain", tmp_path, unit_type="phoneme", phoneme_targets="frames")
    task = get_task("units_pretrain")
    settings = task.settings(config)
    model = task.create_model(config, nnx.Rngs(0))
    model.eval()  # no dropout: the logits below are the ones the loss saw
    host = _batch()
    host["frame_phonemes"] = np.random.default_rng(1).integers(0, UNITS, (B, T)).astype(np.int32)
    loss, metrics = nnx.jit(lambda m, b: task.loss_fn(m, b, nnx.Rngs(1), settings))(
        model, _device(host))
    logits = np.asarray(model(_device(host)["video"], host["video_mask"])["unit_logits"])
    best, valid = logits.argmax(-1), host["video_mask"]
    assert float(metrics["unit_accuracy"]) == pytest.approx(
        (best == host["frame_phonemes"])[valid].mean())
    assert float(loss) == pytest.approx(float(metrics["unit_loss"])
                                        + 0.1 * float(metrics["lid_loss"]), rel=1e-6)
    out = _eval_step(task, model, _device(host), settings)
    for i in range(B):  # runs merged, silence (0) and padding dropped
        frames = best[i, :valid[i].sum()]
        want = [int(u) for j, u in enumerate(frames) if u != 0 and (j == 0 or u != frames[j - 1])]
        assert out["units"][i, :out["units_len"][i]].tolist() == want

    frames = jnp.asarray([[0, 5, 5, 0, 7, 7, 7, 3, 0, 3], [2, 2, 0, 4, 4, 9, 9, 1, 1, 1]])
    mask = jnp.asarray(host["video_mask"])  # the second clip's last 3 frames are padding
    units, lengths = units_pretrain.collapse_frames(frames, mask, drop_silence=True)
    assert np.asarray(units)[0, :int(lengths[0])].tolist() == [5, 7, 3, 3]
    assert np.asarray(units)[1, :int(lengths[1])].tolist() == [2, 4, 9]
    units, lengths = units_pretrain.collapse_frames(frames, mask, drop_silence=False)
    assert np.asarray(units)[0, :int(lengths[0])].tolist() == [0, 5, 0, 7, 3, 0, 3]

    del host["frame_phonemes"]
    with pytest.raises(ValueError, match="frame_phonemes"):
        task.loss_fn(model, _device(host), nnx.Rngs(1), settings)


def test_lmdecoder_frame_mix_gives_frame_phones():
    """loss.frame_mix: in training, a share p of examples reads frame-rate phones."""
    import dataclasses

    from lipjax.models import visemes as viseme_groups
    from lipjax.tasks.lmdecoder import unit_input
    from lipjax.tasks.text import TextSettings
    from lipjax.units.targets import UnitTargets

    b = 400
    batch = {"phoneme_ids": np.tile([[5, 6, 7, 0]], (b, 1)),
             "phoneme_mask": np.tile([[True, True, True, False]], (b, 1)),
             "frame_phonemes": np.tile([[0, 5, 5, 6, 7, 7, 0]], (b, 1)),
             "frame_mask": np.ones((b, 7), bool)}
    settings = TextSettings(units=UnitTargets("phoneme", False), ctc_weight=0.3,
                            label_smoothing=0.1, token_dropout=0.0, beam_size=1,
                            decode_ctc_weight=0.3, length_penalty=0.0, max_decode_len=0)
    ids, mask, visemes = unit_input(batch, settings, jax.random.key(0))  # frame_mix 0
    assert ids is batch["phoneme_ids"] and visemes is None
    mixed = dataclasses.replace(settings, frame_mix=0.5)
    ids, mask, visemes = unit_input(batch, mixed)  # no key (evaluation): sequences
    assert ids is batch["phoneme_ids"] and visemes is None
    ids, mask, visemes = unit_input(batch, mixed, jax.random.key(0))
    assert visemes is None  # viseme_mix 0
    ids, mask = np.asarray(ids), np.asarray(mask)
    assert ids.shape == mask.shape == (b, 7)
    frames = (ids == batch["frame_phonemes"]).all(1) & mask.all(1)
    sequences = (ids[:, :4] == batch["phoneme_ids"]).all(1) & (mask[:, :4] == batch[
        "phoneme_mask"]).all(1) & ~mask[:, 4:].any(1)
    assert (frames ^ sequences).all()  # each example is exactly one of the two
    # Binomial(400, 0.5): standard deviation 10 examples; ±50 is five of them.
    assert abs(frames.sum() - b / 2) < 50
    # viseme_mix: the rest of the examples, marked, read as viseme sequences.
    both = dataclasses.replace(mixed, viseme_mix=0.5)
    ids2, mask2, visemes = unit_input(batch, both, jax.random.key(0))
    ids2, mask2, visemes = np.asarray(ids2), np.asarray(mask2), np.asarray(visemes)[:, 0]
    assert (visemes == ~frames).all()  # same draw: frames first, then visemes
    groups, group_mask = (np.asarray(a) for a in viseme_groups.viseme_sequence(
        batch["phoneme_ids"], batch["phoneme_mask"]))
    assert (ids2[visemes, :4] == groups[0]).all() and (mask2[visemes, :4] == group_mask[0]).all()
    # viseme_noise: the viseme rows, and only they, get stage 1's kinds of error.
    noisy = dataclasses.replace(both, viseme_noise=0.9)
    ids3, mask3, visemes3 = (np.asarray(a) for a in unit_input(batch, noisy, jax.random.key(0)))
    assert (visemes3[:, 0] == visemes).all()
    np.testing.assert_array_equal(ids3[~visemes], ids2[~visemes])
    changed = ((ids3[visemes] != ids2[visemes]) | (mask3[visemes] != mask2[visemes])).any(1)
    assert changed.mean() > 0.5


def test_units_pretrain_metrics_on_hand_counted_outputs(tmp_path):
    """eval_metrics on outputs written by hand, with the expected rates counted by hand (not
    recomputed with the code's own helpers). Phones are ids; | is the word boundary, which
    the unit error rate leaves out; the third row is padding (valid False)."""
    config = _config("units_pretrain", tmp_path, unit_type="phoneme")
    w = WORD_ID
    batch = {
        "phoneme_ids": np.array([[5, 6, 7, w, 8], [9, 10, 0, 0, 0], [5, 5, 5, 5, 5]], np.int32),
        "phoneme_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1] * 5], bool),
        "language": np.array([1, 1, 0], np.int32),
        "valid": np.array([True, True, False]),
    }
    outputs = {
        "units": np.array([[5, 7, w, 8, 8], [9, 0, 0, 0, 0], [1, 1, 1, 1, 1]], np.int32),
        "units_len": np.array([5, 1, 5], np.int32),
        "lid": np.array([1, 3, 2], np.int32),
    }
    result = units_pretrain.eval_metrics([outputs], [batch], config)
    # Row 1: ref 5 6 7 8, hyp 5 7 8 8 -> delete 6, insert 8: 2 edits. Row 2: ref 9 10, hyp 9
    # -> 1 deletion. 3 edits over 6 reference phones; the padding row counts nothing.
    assert result["per"] == pytest.approx(3 / 6)
    # Language: row 1 right, row 2 wrong, row 3 padding.
    assert result["lid_accuracy"] == pytest.approx(1 / 2)


def test_text_metrics_on_hand_counted_outputs(data_dir, tmp_path):
    """WER / CER of the text tasks on hypotheses written by hand (encoded with the language's
    tokenizer), counted by hand: corpus level, padding rows left out."""
    from lipjax.tasks import text
    from lipjax.units.tokenizer import load_tokenizer

    config = _config("lmdecoder", data_dir, unit_type="acoustic")
    sp = load_tokenizer("es", data_dir)
    refs = ["hola mundo", "buenos dias amigo", "una mesa roja"]
    hyps = ["hola", "buenos dias amigos", "la casa"]  # the third row is padding
    ids = [sp.encode(h) for h in hyps]
    width = max(map(len, ids))
    outputs = {"tokens": np.array([i + [0] * (width - len(i)) for i in ids], np.int32),
               "tokens_len": np.array([len(i) for i in ids], np.int32)}
    batch = {"text": np.array(refs, object), "language": np.full(3, languages.index("es")),
             "valid": np.array([True, True, False])}
    result = text.eval_metrics([outputs], [batch], config)
    # Words: "mundo" deleted; "amigo" -> "amigos" substituted: 2 edits / 5 reference words.
    assert result["wer"] == pytest.approx(2 / 5)
    # Characters: " mundo" deleted (6, the space included); "s" inserted (1): 7 / 27.
    assert result["cer"] == pytest.approx(7 / 27)
