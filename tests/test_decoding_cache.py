"""Incremental decoding: the key/value cache gives the logits of the full-prefix decoder, and
greedy and beam search find the same hypotheses with it as without it (random tiny models,
several seeds, one and two languages)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lipjax import decoding, languages
from lipjax.models import factory

UNITS, VOCAB, DIM, LAYERS = 10, 12, 32, 2


def _model(seed: int, codes: tuple[str, ...]):
    model = factory.model_config("tiny", unit_vocab=UNITS, text_vocab=VOCAB, languages=codes,
                                 dropout=0.0, dim=DIM, ffn=64, decoder_layers=LAYERS)
    config = ml_collections.ConfigDict({"model": model, "train": {"dtype": "float32"}})
    m = factory.lmdecoder_model(config, nnx.Rngs(seed))
    m.eval()
    return m


def _inputs(seed: int, codes: tuple[str, ...], batch: int = 3, frames: int = 9):
    rng = np.random.default_rng(seed)
    units = jnp.asarray(rng.integers(0, UNITS, (batch, frames)))
    lengths = rng.integers(2, frames + 1, batch)
    lengths[0] = frames
    mask = jnp.asarray(np.arange(frames)[None] < lengths[:, None])
    lang = jnp.asarray([languages.index(codes[i % len(codes)]) for i in range(batch)], jnp.int32)
    return units, mask, lang


def _tolerance(logits: np.ndarray) -> float:
    """Both paths compute the same sums in float32, only grouped differently (one row against
    the whole prefix): a few roundings of eps each per matmul layer, relative to the largest
    logit."""
    matmuls = LAYERS * 6 + 1  # self q/k/v/out, cross q/out per layer; the output projection
    return 8 * matmuls * np.finfo(np.float32).eps * max(1.0, float(np.abs(logits).max()))


@pytest.mark.parametrize("codes", [("en",), ("en", "es")])
def test_cached_step_logits_equal_the_full_decoder(codes):
    model = _model(0, codes)
    units, mask, lang = _inputs(1, codes)
    tokens = jnp.asarray(np.random.default_rng(2).integers(0, VOCAB, (3, 7)))

    @nnx.jit
    def run(m):
        states = m.encode(units, mask, lang)
        full = m.decoders.decode(tokens, states, mask, lang)
        cache = m.decoders.init_cache(states, mask, lang, tokens.shape[1])
        steps = []
        for i in range(tokens.shape[1]):
            logits, cache = m.decoders.step(cache, tokens[:, i], jnp.int32(i), mask, lang)
            steps.append(logits)
        return full, jnp.stack(steps, axis=1)

    full, steps = map(np.asarray, run(model))
    np.testing.assert_allclose(steps, full, rtol=0, atol=_tolerance(full))


def _decode_both(model, units, mask, lang, **beam):
    """{"greedy": ..., "beam": ...} with the cache and with the full-prefix decoder."""

    @nnx.jit
    def run(m):
        states = m.encode(units, mask, lang)
        ctc = m.decoders.ctc_logits(states, lang)
        out = {}
        for name, decoder in (("cached", m.decoders), ("full", m.decoders.decode)):
            out[name] = {
                "greedy": decoding.attention_greedy(decoder, states, mask, lang, max_len=8),
                "beam": decoding.beam_search(decoder, states, mask, lang, ctc, max_len=8,
                                             **beam)}
        return out

    return jax.tree.map(np.asarray, run(model))


@pytest.mark.parametrize(("codes", "seed"), [(("en",), 0), (("en",), 1), (("en",), 2),
                                             (("en", "es"), 0), (("en", "es"), 1)])
def test_greedy_and_beam_search_find_the_same_hypotheses(codes, seed):
    model = _model(seed, codes)
    units, mask, lang = _inputs(seed + 10, codes, batch=4)
    out = _decode_both(model, units, mask, lang, beam=3, ctc_weight=0.3, length_penalty=0.5)
    cached, full = out["cached"], out["full"]
    for key in ("greedy", "beam"):
        np.testing.assert_array_equal(cached[key][0], full[key][0], err_msg=key)
        np.testing.assert_array_equal(cached[key][1], full[key][1], err_msg=key)
    # Scores sum at most 8 steps of log-softmaxes of logits within _tolerance each.
    scores = full["beam"][2]
    np.testing.assert_allclose(cached["beam"][2], scores, rtol=0,
                               atol=8 * 2 * _tolerance(scores))
    # Random decoders do not always stop at once: the hypotheses have several tokens.
    assert full["greedy"][1].max() > 1
