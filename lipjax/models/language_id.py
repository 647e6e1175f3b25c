"""Utterance-level language identification (SBL, Luo et al. BMVC 2020).

An auxiliary loss that asks the shared encoder to carry which language is spoken, so the
shared units do not blur language-specific cues. Pooling is a masked mean, so padding frames
neither dilute nor change the prediction.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.layers import Dtype


def masked_mean(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """(B, T, D), (B, T) → (B, D) mean over valid frames (float32)."""
    x = x.astype(jnp.float32)
    if mask is None:
        return x.mean(axis=1)
    m = mask.astype(jnp.float32)[..., None]
    return (x * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1.0)


class LanguageID(nnx.Module):
    def __init__(self, dim: int, num_languages: int, *, hidden: int | None = None,
                 dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        hidden = hidden or dim
        self.hidden = nnx.Linear(dim, hidden, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(hidden, num_languages, dtype=dtype, rngs=rngs)

    def __call__(self, states: jax.Array, mask: jax.Array | None) -> jax.Array:
        """(B, T, D) encoder states → float32 (B, num_languages) logits."""
        pooled = masked_mean(states, mask).astype(states.dtype)
        return self.out(nnx.swish(self.hidden(pooled))).astype(jnp.float32)
