"""Decoding: greedy CTC, greedy attention, and batched joint CTC/attention beam search.

All functions are jittable (fixed shapes, `lax.while_loop`). The attention decoder is either a
`StepDecoder` (e.g. `LanguageDecoders`): it keeps every layer's keys and values of the prefix
in a cache and computes one position per step, so a step costs the same at any length; or a
`DecodeFn` (e.g. `LanguageDecoders.decode`): `decode_fn(tokens (N, L), states (N, T, D),
mask (N, T), language (N,) | None) -> logits (N, L, V)`, re-run on the whole (fixed-size)
prefix buffer at every step, which a causal decoder answers with the same logits at step i.
Both give the same hypotheses (tests/test_decoding_cache.py).

Beam search follows ESPnet's joint decoding (Watanabe et al. 2017): a hypothesis h scores
(1 - λ) log p_att(h) + λ log p_ctc-prefix(h) + length_penalty · |h|; candidates are the
top ⌈1.5·beam⌉ next tokens by attention score ("pre-beam"), CTC prefix probabilities are
computed only for them, and finished hypotheses stay in the beam with a frozen score. A
finished hypothesis can still be pushed out of the beam by longer ones that score higher at
that step and lower once they end, so the best finished hypothesis is also kept aside (as
ESPnet keeps its ended hypotheses) and competes in the final choice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp
from jax import lax

from lipjax.schema import BOS, EOS, PAD

DecodeFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array | None], jax.Array]
Cache = Any  # a pytree whose every leaf has the batch (N) on axis 1
NEG = -1e30


class StepDecoder(Protocol):
    """An attention decoder run one position at a time."""

    def init_cache(self, states: jax.Array, mask: jax.Array, language: jax.Array | None,
                   length: int) -> Cache:
        """The state before position 0, for `length` positions of (N,) rows of `states`."""

    def step(self, cache: Cache, tokens: jax.Array, position: jax.Array, mask: jax.Array,
             language: jax.Array | None) -> tuple[jax.Array, Cache]:
        """tokens (N,) at `position` → (logits (N, V) for the next token, the new cache)."""


class FullPrefix:
    """A `DecodeFn` as a `StepDecoder`: its cache is the token prefix (and the states), and
    each step re-runs the decoder on all of it. The reference the key/value cache must match."""

    def __init__(self, decode_fn: DecodeFn) -> None:
        self.decode_fn = decode_fn

    def init_cache(self, states: jax.Array, mask: jax.Array, language: jax.Array | None,
                   length: int) -> Cache:
        del mask, language
        tokens = jnp.zeros((1, states.shape[0], length), jnp.int32)
        return {"tokens": tokens, "states": states[None]}

    def step(self, cache: Cache, tokens: jax.Array, position: jax.Array, mask: jax.Array,
             language: jax.Array | None) -> tuple[jax.Array, Cache]:
        prefix = lax.dynamic_update_index_in_dim(cache["tokens"][0], tokens, position, axis=1)
        logits = self.decode_fn(prefix, cache["states"][0], mask, language)
        return (lax.dynamic_index_in_dim(logits, position, axis=1, keepdims=False),
                dict(cache, tokens=prefix[None]))


def step_decoder(decoder: StepDecoder | DecodeFn) -> StepDecoder:
    """`decoder` itself when it decodes incrementally, else `FullPrefix(decoder)`."""
    if hasattr(decoder, "step") and hasattr(decoder, "init_cache"):
        return decoder
    return FullPrefix(decoder)


def compact(ids: jax.Array, keep: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Moves kept ids to the front of each row (order preserved), PAD elsewhere."""
    b, t = ids.shape
    pos = jnp.where(keep, jnp.cumsum(keep, axis=1) - 1, t)
    out = jnp.zeros_like(ids).at[jnp.arange(b)[:, None], pos].set(ids, mode="drop")
    return out, keep.sum(axis=1)


def ctc_greedy(logits: jax.Array, mask: jax.Array, blank_id: int = 0,
               ) -> tuple[jax.Array, jax.Array]:
    """Best path, repeats merged, blanks removed: (ids (B, T) left-aligned, lengths (B,))."""
    best = jnp.argmax(logits, axis=-1)
    prev = jnp.concatenate([jnp.full_like(best[:, :1], -1), best[:, :-1]], axis=1)
    keep = (best != prev) & (best != blank_id) & mask
    return compact(best, keep)


def _forbid(logp: jax.Array) -> jax.Array:
    return logp.at[..., PAD].set(NEG).at[..., BOS].set(NEG)


def _finish(tokens: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Drops EOS and everything after: (tokens with PAD, lengths)."""
    ended = jnp.cumsum(tokens == EOS, axis=-1) > 0
    tokens = jnp.where(ended, PAD, tokens)
    return tokens, (tokens != PAD).sum(-1)


def attention_greedy(decoder: StepDecoder | DecodeFn, states: jax.Array, mask: jax.Array,
                     language: jax.Array | None, max_len: int) -> tuple[jax.Array, jax.Array]:
    """Greedy autoregressive decoding: (tokens (B, max_len) without BOS/EOS, lengths (B,))."""
    decoder = step_decoder(decoder)
    b = states.shape[0]
    buf = jnp.zeros((b, max_len + 1), jnp.int32).at[:, 0].set(BOS)
    cache = decoder.init_cache(states, mask, language, max_len + 1)

    def cond(carry):
        i, _, done, _ = carry
        return (i < max_len) & ~jnp.all(done)

    def body(carry):
        i, buf, done, cache = carry
        logits, cache = decoder.step(cache, buf[:, i], i, mask, language)
        nxt = jnp.where(done, PAD, jnp.argmax(_forbid(logits), axis=-1)).astype(jnp.int32)
        buf = lax.dynamic_update_index_in_dim(buf, nxt, i + 1, axis=1)
        return i + 1, buf, done | (nxt == EOS), cache

    carry = (jnp.int32(0), buf, jnp.zeros((b,), bool), cache)
    _, buf, _, _ = lax.while_loop(cond, body, carry)
    return _finish(buf[:, 1:])


def _ctc_prefix(x: jax.Array, lens: jax.Array, r: jax.Array, last: jax.Array,
                cand: jax.Array) -> tuple[jax.Array, jax.Array]:
    """CTC prefix scores of h = g + c for every candidate c.

    x: (B, T, V) CTC log-probs; lens: (B,); r: (B, W, T, 2) log-probs of prefix g over frames
    ending in non-blank / blank; last: (B, W) last token of g (-1 if g is empty);
    cand: (B, W, K). Returns psi (B, W, K) = log P(h is a prefix) (for EOS: log P(g)) and the
    new r (B, W, K, T, 2).
    """
    b, w, k = cand.shape
    t = x.shape[1]
    xc = jnp.take_along_axis(x, cand.reshape(b, 1, w * k), axis=2).reshape(b, t, w, k)
    xc = jnp.moveaxis(xc, 1, 0)  # (T, B, W, K)
    blank = jnp.moveaxis(x[..., 0], 1, 0)[:, :, None, None]  # (T, B, 1, 1)
    rn_g = jnp.moveaxis(r[..., 0], 2, 0)[..., None]  # (T, B, W, 1)
    rb_g = jnp.moveaxis(r[..., 1], 2, 0)[..., None]
    same = (cand == last[..., None])[None]
    phi = jnp.where(same, rb_g, jnp.logaddexp(rn_g, rb_g))  # (T, B, W, K)
    valid = (jnp.arange(t)[:, None] < lens[None])[:, :, None, None]  # (T, B, 1, 1)
    empty = (last == -1)[..., None]
    rn0 = jnp.where(empty, xc[0], NEG)
    rb0 = jnp.full_like(rn0, NEG)

    def step(carry, inp):
        rn, rb = carry
        phi_prev, x_c, x_b, ok = inp
        new_n = jnp.logaddexp(rn, phi_prev) + x_c
        new_b = jnp.logaddexp(rn, rb) + x_b
        rn, rb = jnp.where(ok, new_n, rn), jnp.where(ok, new_b, rb)
        return (rn, rb), (rn, rb)

    _, (rn, rb) = lax.scan(step, (rn0, rb0), (phi[:-1], xc[1:], blank[1:], valid[1:]))
    rn = jnp.concatenate([rn0[None], rn], axis=0)
    rb = jnp.concatenate([rb0[None], rb], axis=0)
    terms = jnp.where(valid[1:], phi[:-1] + xc[1:], NEG)
    psi = jnp.logaddexp(rn0, jax.nn.logsumexp(terms, axis=0))
    end = jnp.maximum(lens - 1, 0)
    full = jnp.logaddexp(r[..., 0], r[..., 1])  # (B, W, T)
    full_end = jnp.take_along_axis(full, end[:, None, None], axis=2)  # (B, W, 1)
    psi = jnp.maximum(jnp.where(cand == EOS, full_end, psi), NEG)
    r_new = jnp.moveaxis(jnp.stack([rn, rb], axis=-1), 0, 3)  # (B, W, K, T, 2)
    return psi, r_new


def beam_search(decoder: StepDecoder | DecodeFn, states: jax.Array, mask: jax.Array,
                language: jax.Array | None, ctc_logits: jax.Array | None, *, beam: int,
                ctc_weight: float, length_penalty: float, max_len: int,
                ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Joint CTC/attention beam search: (tokens (B, max_len), lengths (B,), scores (B,))."""
    decoder = step_decoder(decoder)
    b, t = mask.shape
    w = beam
    use_ctc = ctc_weight > 0 and ctc_logits is not None
    rep = lambda a: None if a is None else jnp.repeat(a, w, axis=0)
    st, mk, lg = rep(states), rep(mask), rep(language)
    bidx = jnp.arange(b)[:, None]
    tokens = jnp.zeros((b, w, max_len + 1), jnp.int32).at[..., 0].set(BOS)
    scores = jnp.full((b, w), NEG).at[:, 0].set(0.0)
    done = jnp.zeros((b, w), bool)
    if use_ctc:
        x = jax.nn.log_softmax(ctc_logits.astype(jnp.float32), axis=-1)
        lens = mask.sum(-1)
        rb = jnp.where(jnp.arange(t)[None] < lens[:, None], x[..., 0], 0.0).cumsum(axis=1)
        r = jnp.broadcast_to(jnp.stack([jnp.full_like(rb, NEG), rb], -1)[:, None],
                             (b, w, t, 2))
    else:
        x, lens, r = None, None, jnp.zeros((b, w, 1, 2))
    psi_prev = jnp.zeros((b, w))
    last = jnp.full((b, w), -1, jnp.int32)
    kept = (jnp.zeros((b, max_len + 1), jnp.int32), jnp.full((b,), NEG))  # best finished
    cache = decoder.init_cache(st, mk, lg, max_len + 1)

    def cond(carry):
        i, _, _, done, *_ = carry
        return (i < max_len) & ~jnp.all(done)

    def body(carry):
        i, tokens, scores, done, r, psi_prev, last, kept, cache = carry
        step, cache = decoder.step(cache, tokens[..., i].reshape(b * w), i, mk, lg)
        att = _forbid(jax.nn.log_softmax(step.astype(jnp.float32), -1)).reshape(b, w, -1)
        k = min(att.shape[-1], max(w, int(1.5 * w)))
        top_att, cand = lax.top_k(att, k)
        cand = cand.astype(jnp.int32)
        if use_ctc:
            psi, r_new = _ctc_prefix(x, lens, r, last, cand)
            add = (1 - ctc_weight) * top_att + ctc_weight * (psi - psi_prev[..., None])
            add = jnp.where(top_att <= NEG / 2, NEG, add)  # PAD / BOS stay forbidden
        else:
            psi, r_new = jnp.zeros_like(top_att), None
            add = top_att
        cand_scores = scores[..., None] + add + length_penalty
        frozen = jnp.full((k,), NEG).at[0].set(0.0)
        cand_scores = jnp.where(done[..., None], scores[..., None] + frozen, cand_scores)
        cand = jnp.where(done[..., None], PAD, cand)
        new_scores, idx = lax.top_k(cand_scores.reshape(b, w * k), w)
        parent = idx // k
        tok = jnp.take_along_axis(cand.reshape(b, w * k), idx, axis=1)
        was_done = jnp.take_along_axis(done, parent, axis=1)
        tokens = tokens[bidx, parent]
        tokens = lax.dynamic_update_index_in_dim(tokens, tok, i + 1, axis=2)
        rows = (bidx * w + parent).reshape(-1)  # each new hypothesis's parent row
        cache = jax.tree.map(lambda c: c[:, rows], cache)
        if use_ctc:
            r_sel = r_new.reshape(b, w * k, t, 2)[bidx, idx]
            r = jnp.where(was_done[..., None, None], r[bidx, parent], r_sel)
            psi_prev = jnp.where(was_done, psi_prev[bidx, parent],
                                 psi.reshape(b, w * k)[bidx, idx])
        last = jnp.where(was_done, last[bidx, parent], tok)
        ended = jnp.where((tok == EOS) & ~was_done, new_scores, NEG)  # finished at this step
        j = jnp.argmax(ended, axis=1)
        better = ended[jnp.arange(b), j] > kept[1]
        kept = (jnp.where(better[:, None], tokens[jnp.arange(b), j], kept[0]),
                jnp.where(better, ended[jnp.arange(b), j], kept[1]))
        return (i + 1, tokens, new_scores, was_done | (tok == EOS), r, psi_prev, last, kept,
                cache)

    carry = (jnp.int32(0), tokens, scores, done, r, psi_prev, last, kept, cache)
    _, tokens, scores, *_, (kept_tokens, kept_score), _ = lax.while_loop(cond, body, carry)
    best = jnp.argmax(scores, axis=1)
    best_tokens, best_score = tokens[jnp.arange(b), best], scores[jnp.arange(b), best]
    # Only a finished hypothesis that left the beam can beat the beam's best.
    use_kept = kept_score > best_score
    best_tokens = jnp.where(use_kept[:, None], kept_tokens, best_tokens)
    out, lengths = _finish(best_tokens[:, 1:])
    return out, lengths, jnp.where(use_kept, kept_score, best_score)
