"""Decoding: greedy CTC by hand, beam 1 == greedy, CTC prefix scores == CTC likelihood, joint
CTC/attention beam search == an exhaustive search, finished hypotheses kept."""

import functools
import itertools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import decoding, losses
from lipjax.models import factory
from lipjax.models.decoder import EOS
from lipjax.schema import BOS, PAD


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


# ---------------------------------------------------------------------------------------------
# Beam search against an exhaustive search on a tiny vocabulary.
#
# The decoder is replaced by a table: the logits at position i are an arbitrary fixed function
# of the prefix tokens[:i+1] (and of the batch element), so every hypothesis has a known score.
# The score beam_search documents, for a hypothesis y = y_1..y_n:
#   finished (y then EOS, n < max_len):
#       (1-λ) [Σ_j log p_att(y_j | y_<j) + log p_att(EOS | y)] + λ log p_ctc(y) + lp·(n+1)
#   unfinished (n = max_len, cut by the length limit):
#       (1-λ) Σ_j log p_att(y_j | y_<j) + λ log p_ctc(y is a prefix) + lp·n
# (the CTC prefix increments telescope to the prefix probability; EOS turns it into the full
# probability), λ = ctc_weight, lp = length_penalty (per token, EOS included).
# ---------------------------------------------------------------------------------------------


def _table_decoder(vocab: int):
    """decode_fn reading logits from table[batch, i, key(tokens[:i+1])], key the prefix written
    in base `vocab` (distinct for distinct prefixes); `states[:, 0, 0]` holds the batch index
    (beam_search repeats states per beam)."""

    def decode(table, tokens, states, mask, language):
        del mask, language
        batch = states[:, 0, 0].astype(jnp.int32)
        keys = jnp.cumsum(tokens * vocab ** jnp.arange(tokens.shape[1]), axis=1)
        return table[batch[:, None], jnp.arange(tokens.shape[1])[None], keys]

    return decode


def _att_logp(table: np.ndarray, b: int, prefix: tuple[int, ...]) -> np.ndarray:
    """log p_att(· | prefix) in float64 (prefix starts with BOS), as the table decoder gives."""
    v = table.shape[-1]
    key = sum(t * v ** j for j, t in enumerate(prefix))
    logits = table[b, len(prefix) - 1, key].astype(np.float64)
    return logits - np.logaddexp.reduce(logits)


def _ctc_sequences(logp: np.ndarray) -> dict[tuple[int, ...], float]:
    """log p_ctc(z) of every label sequence z, summed over every frame path (blank 0)."""
    t, v = logp.shape
    out: dict[tuple[int, ...], float] = {}
    for path in itertools.product(range(v), repeat=t):
        z = tuple(p for i, p in enumerate(path) if p != 0 and (i == 0 or p != path[i - 1]))
        out[z] = np.logaddexp(out.get(z, -np.inf), logp[np.arange(t), path].sum())
    return out


def _exhaustive(table: np.ndarray, ctc_sequences: dict[tuple[int, ...], float] | None, b: int,
                *, ctc_weight: float, length_penalty: float, max_len: int,
                ) -> dict[tuple[int, ...], float]:
    """{hypothesis (EOS appended when finished): score} of every hypothesis beam_search can
    return for batch element b; `ctc_sequences`: `_ctc_sequences` of its CTC log-probs."""
    v = table.shape[-1]
    words = [c for c in range(v) if c not in (PAD, BOS, EOS)]
    seqs = ctc_sequences or {}
    full = lambda y: seqs.get(y, -np.inf)
    prefix = lambda y: np.logaddexp.reduce(
        [s for z, s in seqs.items() if z[:len(y)] == y] + [-np.inf])
    scores = {}
    for n in range(max_len + 1):
        for y in itertools.product(words, repeat=n):
            att = sum(_att_logp(table, b, (BOS,) + y[:j])[y[j]] for j in range(n))
            finished = n < max_len
            if finished:
                att += _att_logp(table, b, (BOS,) + y)[EOS]
            score = (1 - ctc_weight) * att + length_penalty * (n + finished)
            if ctc_weight > 0:  # (0 · log 0 would be nan)
                score += ctc_weight * (full(y) if finished else prefix(y))
            scores[y + (EOS,) * finished] = score
    return scores


def _beam_covering_everything(vocab: int, max_len: int) -> int:
    """The most hypotheses (finished ones included) a search can hold at one step: with a beam
    this wide, beam search prunes nothing and must find the exhaustive search's best."""
    words = vocab - 3  # PAD and BOS are never emitted; EOS ends
    finished_before = lambda i: sum(words ** j for j in range(i))
    return max(finished_before(i) + words ** i * (words + 1) for i in range(max_len))


def test_beam_search_finds_the_exhaustive_best():
    """Three words, up to 4 tokens, 5 and 4 CTC frames; CTC weight 0, 0.3, 1 × length
    penalty 0, 0.5, 1: 121 hypotheses per clip, every one kept by a 121-wide beam."""
    vocab, max_len, b, t = 6, 4, 2, 5
    rng = np.random.default_rng(0)
    lens = np.array([5, 4])
    table = (1.5 * rng.normal(size=(b, max_len + 1, vocab ** (max_len + 1), vocab))
             ).astype(np.float32)
    ctc_logits = (2.0 * rng.normal(size=(b, t, vocab))).astype(np.float32)
    mask = np.arange(t)[None] < lens[:, None]
    logp = ctc_logits.astype(np.float64)
    logp -= np.logaddexp.reduce(logp, axis=-1, keepdims=True)
    sequences = [_ctc_sequences(logp[i, :lens[i]]) for i in range(b)]
    states = jnp.broadcast_to(jnp.arange(b, dtype=jnp.float32)[:, None, None], (b, t, 1))
    beam = _beam_covering_everything(vocab, max_len)
    decode = _table_decoder(vocab)

    @functools.partial(jax.jit, static_argnames="ctc_weight")
    def search(table, ctc_logits, length_penalty, ctc_weight):
        return decoding.beam_search(
            functools.partial(decode, table), states, jnp.asarray(mask), None, ctc_logits,
            beam=beam, ctc_weight=ctc_weight, length_penalty=length_penalty, max_len=max_len)

    for ctc_weight in (0.0, 0.3, 1.0):
        for length_penalty in (0.0, 0.5, 1.0):
            tokens, lengths, got = (np.asarray(a) for a in search(
                table, ctc_logits, jnp.float32(length_penalty), ctc_weight=ctc_weight))
            for i in range(b):
                want = _exhaustive(table, sequences[i], i, ctc_weight=ctc_weight,
                                   length_penalty=length_penalty, max_len=max_len)
                best = max(want.values())
                # float32 scores: each of the ~(max_len + t) log-softmax / CTC-recursion
                # terms is rounded to a few eps of the score's magnitude; ties within this
                # may resolve either way.
                tol = 8 * (max_len + t) * np.finfo(np.float32).eps * max(1.0, abs(best))
                y = tuple(int(c) for c in tokens[i, :lengths[i]])
                y += (EOS,) * (len(y) < max_len)  # shorter than max_len: it finished
                case = f"ctc_weight {ctc_weight}, length_penalty {length_penalty}, row {i}"
                assert abs(got[i] - want[y]) <= tol, (case, y, got[i], want[y])
                assert want[y] >= best - tol, (case, y, want[y], max(want, key=want.get), best)


def test_an_early_finished_hypothesis_pushed_out_of_the_beam_still_wins():
    """Beam 2. Step 1: [a EOS] finishes (p 0.2·0.95 = 0.19) beside [b b] (0.78). Step 2:
    [b b a] (0.39) and [b b b] (0.38) both outscore it and fill the beam. Step 3: every
    continuation is uniform over {a, b, EOS} (≤ 0.39 / 3 = 0.13): [a] is the best hypothesis
    and must be returned although the beam no longer holds it."""
    vocab, max_len, a, bb = 5, 4, 1, 4  # ids: PAD 0, a = UNK 1, BOS 2, EOS 3, b 4
    probs = {(): {a: 0.2, bb: 0.79, EOS: 0.01},
             (a,): {a: 0.025, bb: 0.025, EOS: 0.95},
             (bb,): {a: 0.005, bb: 0.99, EOS: 0.005},
             (bb, bb): {a: 0.5, bb: 0.49, EOS: 0.01}}
    table = np.full((1, max_len + 1, vocab ** (max_len + 1), vocab), np.log(1 / 3), np.float32)
    table[..., [PAD, BOS]] = -30.0  # never chosen (beam_search forbids them anyway)
    for prefix, p in probs.items():
        key = sum(c * vocab ** j for j, c in enumerate((BOS,) + prefix))
        for c, pc in p.items():
            table[0, len(prefix), key, c] = np.log(pc)
    want = _exhaustive(table, None, 0, ctc_weight=0.0, length_penalty=0.0, max_len=max_len)
    assert max(want, key=want.get) == (a, EOS)  # the construction
    states, mask = jnp.zeros((1, 3, 1)), jnp.ones((1, 3), bool)
    decode = functools.partial(_table_decoder(vocab), jnp.asarray(table))
    tokens, lengths, score = decoding.beam_search(decode, states, mask, None, None, beam=2,
                                                  ctc_weight=0.0, length_penalty=0.0,
                                                  max_len=max_len)
    assert np.asarray(tokens)[0, :int(lengths[0])].tolist() == [a]
    # two float32 log-softmax terms of magnitude < 2, each rounded to a few eps of it
    assert abs(float(score[0]) - want[a, EOS]) <= 2 * 4 * np.finfo(np.float32).eps * 2
