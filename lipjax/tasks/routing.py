"""Which language's decoder reads a clip: the language-ID head's choice, not the label.

A lip reader of several languages (`LipReader` with a language-ID head) is used on clips
whose language nobody states, so at inference the head picks the decoder:
  - "hard": the most likely of the reader's languages decodes the clip;
  - "soft": every language decodes it (one beam search each), and the hypothesis with the best
    beam score plus `lid_weight` × log P(language | clip) wins, so a confident transcript can
    overrule an unsure language-ID head;
  - "oracle": the clip's labelled language (evaluation only: the upper bound routing aims at).
The visual encoder runs once; only the memory read and the LMDecoders run per language.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from lipjax import languages

ROUTES = ("oracle", "hard", "soft")


def check_route(route: str) -> str:
    if route not in ROUTES:
        raise ValueError(f"config decoding.route: expected one of {ROUTES}, found {route!r}")
    return route


def global_index(model: Any) -> jax.Array:
    """(L,) registered-language index of each of the reader's languages, in decoder order."""
    return jnp.asarray([languages.index(c) for c in model.decoders.codes], jnp.int32)


def language_log_probs(model: Any, states: jax.Array, mask: jax.Array) -> jax.Array:
    """(B, L) log P(language | clip) over the reader's languages."""
    return jax.nn.log_softmax(model.language_logits(states, mask), axis=-1)


def hard(model: Any, states: jax.Array, mask: jax.Array) -> jax.Array:
    """(B,) registered-language index of each clip's most likely language (as batch["language"])."""
    return global_index(model)[jnp.argmax(language_log_probs(model, states, mask), axis=-1)]


def soft(decode: Any, model: Any, states: jax.Array, mask: jax.Array,
         lid_weight: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Every language's hypothesis, scored with its language's log-probability.

    `decode(language (B,)) -> (tokens (B, N), lengths (B,), scores (B,))` decodes every clip
    as one language. Returns (tokens, lengths, chosen language (B,) as registered indices)."""
    logp = language_log_probs(model, states, mask)
    index = global_index(model)
    tokens, lengths, totals = [], [], []
    for i in range(index.shape[0]):
        language = jnp.full(mask.shape[:1], index[i], jnp.int32)
        t, n, score = decode(language)
        tokens.append(t)
        lengths.append(n)
        totals.append(score + lid_weight * logp[:, i])
    best = jnp.argmax(jnp.stack(totals, axis=1), axis=1)
    rows = jnp.arange(best.shape[0])
    return jnp.stack(tokens, 1)[rows, best], jnp.stack(lengths, 1)[rows, best], index[best]
