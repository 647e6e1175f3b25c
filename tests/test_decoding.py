"""Decoding: greedy CTC by hand, beam 1 == greedy, CTC prefix scores == CTC likelihood."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import decoding, losses
from lipjax.models import factory
from lipjax.models.decoder import EOS


def test_ctc_greedy_merges_repeats_and_drops_blanks_and_padding():
    best = np.array([[0, 4, 4, 0, 4, 5, 5, 6]])
    logits = jax.nn.one_hot(best, 8) * 5.0
    mask = jnp.asarray(np.arange(8)[None] < 7)
    ids, n = decoding.ctc_greedy(logits, mask)
    assert int(n[0]) == 3 and ids[0, :3].tolist() == [4, 4, 5]


def _tiny_lmdecoder(seed: int):
    model = factory.model_config("tiny", unit_vocab=10, text_vocab=12, languages=("en",),
                                 dropout=0.0)
    config = ml_collections.ConfigDict({"model": model, "train": {"dtype": "float32"}})
    m = factory.lmdecoder_model(config, nnx.Rngs(seed))
    m.eval()
    return m


def test_beam_one_equals_greedy_attention():
    model = _tiny_lmdecoder(0)
    rng = np.random.default_rng(0)
    units = jnp.asarray(rng.integers(0, 10, (3, 7)))
    mask = jnp.asarray(np.arange(7)[None] < np.array([7, 5, 3])[:, None])
    lang = jnp.zeros((3,), jnp.int32)

    @nnx.jit
    def run(m):
        states = m.encode(units, mask, lang)
        greedy = decoding.attention_greedy(m.decoders.decode, states, mask, lang, max_len=6)
        beam = decoding.beam_search(m.decoders.decode, states, mask, lang,
                                    m.decoders.ctc_logits(states, lang), beam=1, ctc_weight=0.0,
                                    length_penalty=0.0, max_len=6)
        return greedy, beam

    (g_tok, g_len), (b_tok, b_len, _) = run(model)
    np.testing.assert_array_equal(g_tok, b_tok)
    np.testing.assert_array_equal(g_len, b_len)


def test_ctc_prefix_scores_give_the_ctc_likelihood():
    """With CTC weight 1 and every token a candidate, the finished hypothesis' score is
    log p_ctc(y), which optax's CTC loss computes independently."""
    rng = np.random.default_rng(1)
    b, t, v = 2, 6, 6
    ctc_logits = jnp.asarray(2.0 * rng.normal(size=(b, t, v)), jnp.float32)
    mask = jnp.asarray(np.arange(t)[None] < np.array([6, 4])[:, None])
    states = jnp.zeros((b, t, 4))
    flat = lambda tokens, *_: jnp.zeros(tokens.shape + (v,))  # uniform attention scores
    tokens, lengths, scores = jax.jit(
        lambda c: decoding.beam_search(flat, states, mask, None, c, beam=4, ctc_weight=1.0,
                                       length_penalty=0.0, max_len=t))(ctc_logits)
    assert np.all(np.asarray(tokens) != EOS)
    label_mask = np.arange(t)[None] < np.asarray(lengths)[:, None]
    nll = losses.ctc_per_sequence(ctc_logits, mask, tokens, jnp.asarray(label_mask))
    np.testing.assert_allclose(-np.asarray(nll), scores, rtol=1e-4, atol=1e-4)
