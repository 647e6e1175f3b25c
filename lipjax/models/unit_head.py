"""Shared-unit head: the general speech knowledge learnt in stage 1.

Two kinds of units, one linear layer: phoneme ids (shared IPA inventory, id 0 = CTC blank) read
out with CTC, since phonemes are not aligned to frames; or 25 Hz acoustic units (k-means on the
audio, aligned with the video frames) read out with frame-level cross-entropy.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.layers import Dtype


class UnitHead(nnx.Module):
    def __init__(self, dim: int, vocab: int, *, dropout: float = 0.1,
                 dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.proj = nnx.Linear(dim, vocab, dtype=dtype, rngs=rngs)

    def __call__(self, states: jax.Array) -> jax.Array:
        """(B, T, D) encoder states → float32 (B, T, vocab) logits (CTC or per-frame CE)."""
        return self.proj(self.dropout(states)).astype(jnp.float32)
