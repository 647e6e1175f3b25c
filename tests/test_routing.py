"""One lip reader for several languages: its language-ID head picks the decoder (hard and soft
routing), evaluation scores the labelled and the routed decoder, stage 1's head loads, and a
clip of a language without a decoder is never read by another language's."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from lipjax import languages, losses
from lipjax.metrics import wer
from lipjax.models import factory
from lipjax.models.lmdecoder import ABSENT_PIECE
from lipjax.tasks import get_task, routing, text
from lipjax.tasks.common import WEIGHTS, ids_to_text
from lipjax.units.tokenizer import train_tokenizer

B, T, HW, L = 4, 10, 24, 5
UNITS = 12
CODES = ("es", "it")
SIZES = (24, 20)  # tokenizer pieces (what these few sentences allow at most: 27)
TEXTS = {"es": ["hola mundo", "buenos dias amigo", "la casa es grande", "el perro come pan"],
         "it": ["ciao mondo", "buon giorno amico", "la casa grande", "il cane mangia pane"]}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    # Two sizes: each LMDecoder has its own tokenizer's, the reader's outputs the largest.
    for code, size in zip(CODES, SIZES, strict=True):
        sp = train_tokenizer(TEXTS[code] * 6, languages.get(code).tokenizer_path(d),
                             vocab_size=size)
        assert sp.get_piece_size() == size
    return d


def _config(data_dir, codes=CODES, **model):
    model = factory.model_config("tiny", unit_vocab=UNITS, unit_type="acoustic",
                                 languages=codes, **model)
    return ml_collections.ConfigDict({
        "task": "finetune", "model": model, "train": {"dtype": "float32", "remat": False},
        "loss": {"ctc_weight": 0.3, "label_smoothing": 0.1, "token_dropout": 0.0,
                 "lid_weight": 0.5},
        "decoding": {"beam_size": 3, "decode_ctc_weight": 0.3, "length_penalty": 0.0,
                     "max_decode_len": 6, "route": "hard", "lid_weight": 1.0},
        "data": {"data_dir": str(data_dir)}, "init": {}})


def _batch(labels, seed=0):
    rng = np.random.default_rng(seed)
    mask = np.arange(T)[None] < np.array([T, T - 3, T, T - 1])[:, None]
    return {"video": rng.normal(size=(B, T, HW, HW)).astype(np.float32), "video_mask": mask,
            "tokens": rng.integers(4, min(SIZES), (B, L)).astype(np.int32),
            "token_mask": np.arange(L)[None] < np.array([L, 2, 3, L])[:, None],
            "language": np.array([languages.index(c) for c in labels], np.int32),
            "text": np.array([TEXTS.get(c, TEXTS["es"])[i] for i, c in enumerate(labels)],
                             object)}


def _device(batch):
    return {k: jnp.asarray(v) for k, v in batch.items() if v.dtype != object}


def _model(config, seed=0):
    model = get_task("finetune").create_model(config, nnx.Rngs(seed))
    model.eval()
    return model


def _prefer(model, code, margin=50.0):
    """Makes the language-ID head pick `code` for every clip, by its output bias."""
    bias = model.lid.out.bias
    bias.value = bias.value.at[languages.index(code)].add(margin)


@functools.cache
def _jitted(name):
    """One jitted step per name, shared by the tests: same shapes and settings compile once."""
    return nnx.jit(getattr(get_task("finetune"), name), static_argnames="settings")


def _step(name, model, batch, settings):
    return jax.tree.map(np.asarray, _jitted(name)(model, batch, settings=settings))


@functools.cache
def _loss_and_grads(settings):
    task = get_task("finetune")
    return nnx.jit(nnx.value_and_grad(lambda m, b: task.loss_fn(m, b, None, settings),
                                      has_aux=True))


def test_one_language_has_no_head_several_have_one(data_dir):
    assert _model(_config(data_dir, codes=("es",))).lid is None
    model = _model(_config(data_dir))
    assert model.lid is not None
    # Stage 1's head scores every registered language: the same shape loads from it.
    assert model.lid.out.bias.value.shape == (len(languages.codes()),)


@pytest.mark.parametrize("chosen", CODES)
def test_hard_routing_decodes_with_the_chosen_language(data_dir, chosen):
    config = _config(data_dir)
    settings = text.TextSettings.from_config(config)
    model = _model(config)
    _prefer(model, chosen)
    labels = ["es", "it", "it", "es"]
    host = _batch(labels)
    out = _step("eval_step", model, _device(host), settings)
    assert (out["tokens_routed_language"] == languages.index(chosen)).all()
    # The routed hypotheses are exactly the labelled-language decoding of the same clips
    # labelled `chosen`.
    as_chosen = _step("eval_step", model, _device({**host, "language": np.full(
        B, languages.index(chosen), np.int32)}), settings)
    np.testing.assert_array_equal(out["tokens_routed"], as_chosen["tokens"])
    np.testing.assert_array_equal(out["tokens_routed_len"], as_chosen["tokens_len"])
    result = get_task("finetune").eval_metrics([out], [host], config)
    assert result["lid_accuracy"] == pytest.approx(labels.count(chosen) / B)
    # wer_routed reads each hypothesis with the tokenizer of the language that wrote it.
    refs = [languages.get(c).normalize(t) for c, t in zip(labels, host["text"], strict=True)]
    hyps = [ids_to_text(out["tokens_routed"][i], int(out["tokens_routed_len"][i]), chosen,
                        str(data_dir)) for i in range(B)]
    assert result["wer_routed"] == pytest.approx(wer(refs, hyps))
    assert {"wer", "cer", "wer_ctc", "wer_routed", "cer_routed", "lid_accuracy"} == set(result)


def test_soft_routing_weighs_beam_scores_with_the_language_posterior(data_dir):
    config = _config(data_dir)
    model = _model(config, seed=3)
    batch = _device(_batch(["es", "it", "es", "it"], seed=1))
    states = model.visual(batch["video"], batch["video_mask"])
    mask = batch["video_mask"]
    settings = text.TextSettings.from_config(config)

    one_language = nnx.jit(lambda m, s, k, language: text.beam_decode(
            m, *m.encode_states(s, k, language), language, settings))
    decoded = {languages.index(c): one_language(
            model, states, mask, jnp.full((B,), languages.index(c), jnp.int32)) for c in CODES}

    def decode(language):  # what routing.soft calls: every clip read as `language`
        return decoded[int(language[0])]

    logp = np.asarray(routing.language_log_probs(model, states, mask))
    per_language = [decoded[languages.index(c)] for c in CODES]
    scores = np.stack([np.asarray(s) for _, _, s in per_language], axis=1)
    for weight in (0.0, 1.0, 1e4):
        tokens, lengths, chosen = routing.soft(decode, model, states, mask, weight)
        best = np.argmax(scores + weight * logp, axis=1)
        want = np.array([languages.index(CODES[i]) for i in best])
        np.testing.assert_array_equal(np.asarray(chosen), want)
        for row, i in enumerate(best):
            np.testing.assert_array_equal(np.asarray(tokens)[row],
                                          np.asarray(per_language[i][0])[row])
            assert int(lengths[row]) == int(per_language[i][1][row])
    # A weight that dwarfs the beam scores follows the language-ID head alone.
    _, _, chosen = routing.soft(decode, model, states, mask, 1e4)
    np.testing.assert_array_equal(np.asarray(chosen),
                                  np.asarray(routing.hard(model, states, mask)))


def test_beam_step_reports_hard_and_soft_routing(data_dir):
    config = _config(data_dir)
    model = _model(config)
    _prefer(model, "it")
    host = _batch(["it", "it", "es", "it"])
    settings = text.TextSettings.from_config(config)
    out = _step("beam_step", model, _device(host), settings)
    assert {"tokens_routed", "tokens_soft", "tokens_soft_language"} <= set(out)
    result = get_task("finetune").eval_metrics([out], [host], config)
    assert result["lid_accuracy"] == pytest.approx(0.75)
    assert {"wer_soft", "cer_soft", "lid_accuracy_soft"} <= set(result)


def test_language_id_loss_trains_the_head(data_dir):
    config = _config(data_dir)
    task = get_task("finetune")
    settings = task.settings(config)
    model = task.create_model(config, nnx.Rngs(0))
    model.eval()  # no dropout: the two losses below see the same network
    batch = _device(_batch(["es", "it", "it", "es"]))
    (loss, metrics), grads = _loss_and_grads(settings)(model, batch)
    assert {"lid_loss", "lid_accuracy"} <= set(metrics) and np.isfinite(float(loss))
    assert np.abs(np.asarray(grads["lid"]["out"]["kernel"].value)).max() > 0
    # Without the weight the head gets no gradient and the loss is the text loss alone.
    config.loss.lid_weight = 0.0
    (loss0, metrics0), grads0 = _loss_and_grads(task.settings(config))(model, batch)
    assert "lid_loss" not in metrics0
    assert float(loss) == pytest.approx(float(loss0) + 0.5 * float(metrics["lid_loss"]),
                                        rel=1e-5)
    assert np.abs(np.asarray(grads0["lid"]["out"]["kernel"].value)).max() == 0


def test_a_language_without_decoder_is_never_read_by_another(data_dir):
    model = _model(_config(data_dir))
    batch = _device(_batch(["es", "en", "it", "es"]))
    states, mask = model.encode(batch["video"], batch["video_mask"], batch["language"])
    logits = np.asarray(model.decoders.ctc_logits(states, batch["language"]))
    assert np.isnan(logits[1]).all()
    assert np.isfinite(logits[[0, 2, 3]]).all()


def test_stage_one_language_id_head_loads(data_dir, tmp_path):
    stage1_config = ml_collections.ConfigDict({
        "task": "units_pretrain", "train": {"dtype": "float32", "remat": False},
        "model": factory.model_config("tiny", unit_vocab=UNITS, unit_type="acoustic"),
        "loss": {"lid_weight": 0.3}})
    stage1 = get_task("units_pretrain").create_model(stage1_config, nnx.Rngs(5))
    with ocp.CheckpointManager(tmp_path / "s1" / "checkpoints") as mngr:
        state = {"model": nnx.state(stage1, WEIGHTS).to_pure_dict(), "step": 2}
        mngr.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))
        mngr.wait_until_finished()
    config = _config(data_dir)
    config.init = {"encoder": str(tmp_path / "s1"), "lid": str(tmp_path / "s1")}
    model = get_task("finetune").create_model(config, nnx.Rngs(9))
    get_task("finetune").load_pretrained(model, config)
    jax.tree.map(np.testing.assert_array_equal, nnx.state(model.lid, WEIGHTS).to_pure_dict(),
                 nnx.state(stage1.lid, WEIGHTS).to_pure_dict())
    single = _config(data_dir, codes=("es",))
    single.init = {"lid": str(tmp_path / "s1")}
    with pytest.raises(ValueError, match="no language-ID head"):
        get_task("finetune").load_pretrained(_model(single), single)


def test_route_setting_is_checked(data_dir):
    config = _config(data_dir)
    config.decoding.route = "best"
    with pytest.raises(ValueError, match="decoding.route"):
        text.TextSettings.from_config(config)


def test_each_decoder_keeps_its_tokenizer_size(data_dir):
    model = _model(_config(data_dir))
    assert tuple(model.decoders.lmdecoders[c].text_vocab for c in CODES) == SIZES
    batch = _device(_batch(["es", "it", "it", "es"]))
    states, mask = model.encode(batch["video"], batch["video_mask"], batch["language"])
    logits = np.asarray(model.decoders.ctc_logits(states, batch["language"]))
    assert logits.shape[-1] == SIZES[0]
    assert (logits[[1, 2], :, SIZES[1]:] == ABSENT_PIECE).all()
    assert (logits[[0, 3], :, SIZES[1]:] != ABSENT_PIECE).all()
    vocab_mask = np.asarray(model.decoders.vocab_mask(batch["language"]))
    np.testing.assert_array_equal(vocab_mask.sum(1), [SIZES[0], SIZES[1], SIZES[1], SIZES[0]])


def test_smoothing_spreads_over_the_rows_own_vocabulary():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3, 7)).astype(np.float32)
    targets = rng.integers(0, 5, (2, 3))
    mask = np.ones((2, 3), bool)
    # Row 1's language has 5 pieces: padded logits and a vocabulary mask give its own loss.
    padded = logits.copy()
    padded[1, :, 5:] = ABSENT_PIECE
    vocab_mask = np.arange(7)[None] < np.array([[7], [5]])
    got = losses.label_smoothed_ce(padded, targets, mask, 0.1, vocab_mask)
    want = (losses.label_smoothed_ce(logits[:1], targets[:1], mask[:1], 0.1)
            + losses.label_smoothed_ce(logits[1:, :, :5], targets[1:], mask[1:], 0.1)) / 2
    # Sums of a few float32 log-probabilities of order 1: equal to float32 rounding.
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)


def test_ids_beyond_a_smaller_vocabulary_leave_gradients_finite(data_dir):
    """Every decoder reads every row of a mixed batch: the es rows' ids past it's tokenizer
    must not reach it's embedding table (its NaN would leak into the gradients)."""
    config = _config(data_dir)
    task = get_task("finetune")
    model = task.create_model(config, nnx.Rngs(0))
    model.eval()  # as the test above: its compiled loss is reused
    host = _batch(["es", "it", "it", "es"])
    host["tokens"][[0, 3]] = SIZES[1] + np.arange(L) % (SIZES[0] - SIZES[1])
    (loss, _), grads = _loss_and_grads(task.settings(config))(model, _device(host))
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


def test_transcribe_lets_the_head_choose_when_no_language_is_given(data_dir):
    """`lipjax transcribe`'s Reader: with no language the head routes each clip, hard (greedy
    here) or soft (beam); either reads a clip as the given language would."""
    from experiments.transcribe import Reader, given_language, inference_route

    config = _config(data_dir)
    model = _model(config)
    _prefer(model, "it")
    host = {**_batch(["es", "es", "it", "es"]), "valid": np.ones(B, bool)}
    for route, greedy in (("hard", True), ("soft", False)):
        reader = Reader(config, model, greedy=greedy, route=route)
        tokens, lengths, chosen, _ = reader(host)
        assert [code for code, _ in chosen] == ["it"] * B
        assert all(p > 0.99 for _, p in chosen)  # a bias of 50 leaves the other ~e^-50
        as_it, as_it_lengths, given, _ = reader(host, "it")
        assert given == [("it", None)] * B
        np.testing.assert_array_equal(tokens, as_it)
        np.testing.assert_array_equal(lengths, as_it_lengths)
    assert inference_route(config, "soft", greedy=True) == "hard"  # soft needs beam scores
    assert inference_route(config, None, greedy=False) == config.decoding.route
    with pytest.raises(ValueError, match="oracle"):
        inference_route(config, "oracle", greedy=False)
    with pytest.raises(ValueError, match="no decoder for 'pt'"):
        given_language(config, "pt")
    with pytest.raises(KeyError):
        given_language(config, "xx")
    assert given_language(_config(data_dir, codes=("es",)), None) == "es"
