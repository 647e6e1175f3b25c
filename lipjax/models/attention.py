"""Multi-head attention, with the relative-position variant the Conformer uses.

Relative positions (Transformer-XL / ESPnet `RelPositionMultiHeadedAttention`): scores are
(q + u)·k + (q + v)·p_{i-j}, so what a frame attends to depends on distances only; with padding
masked out of the keys, a valid frame's output never depends on how much padding follows.
The softmax runs in float32 whatever the compute dtype (`jax.nn.dot_product_attention`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.layers import Dtype, relative_positions


def rel_shift(scores: jax.Array) -> jax.Array:
    """(..., T, 2T-1) scores over relative positions T-1..-(T-1) → (..., T, T) with entry
    [i, j] taken at relative position i - j (index T-1-i+j); the pad-and-reshape trick avoids a
    gather."""
    *lead, t, p = scores.shape
    padded = jnp.pad(scores, [(0, 0)] * len(lead) + [(0, 0), (1, 0)])
    padded = padded.reshape(*lead, p + 1, t)[..., 1:, :]
    return padded.reshape(*lead, t, p)[..., :t]


class MultiHeadAttention(nnx.Module):
    """Self- or cross-attention; `rel_pos=True` adds the relative-position terms."""

    def __init__(self, dim: int, heads: int, *, dropout: float = 0.0, rel_pos: bool = False,
                 kv_dim: int | None = None, dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        if dim % heads:
            raise ValueError(f"config model: attention dim {dim} is not divisible by "
                             f"{heads} heads")
        self.heads, self.head_dim, self.rel_pos = heads, dim // heads, rel_pos
        kv_dim = kv_dim or dim
        lin = lambda i, o, **kw: nnx.Linear(i, o, dtype=dtype, rngs=rngs, **kw)
        self.query, self.key, self.value = lin(dim, dim), lin(kv_dim, dim), lin(kv_dim, dim)
        self.out = lin(dim, dim)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        if rel_pos:
            self.pos = lin(dim, dim, use_bias=False)
            init = nnx.initializers.xavier_uniform()
            self.pos_bias_u = nnx.Param(init(rngs.params(), (heads, self.head_dim)))
            self.pos_bias_v = nnx.Param(init(rngs.params(), (heads, self.head_dim)))
        self.dtype = dtype

    def _split(self, x: jax.Array) -> jax.Array:
        return x.reshape(*x.shape[:-1], self.heads, self.head_dim)

    def __call__(self, x: jax.Array, kv: jax.Array | None = None,
                 mask: jax.Array | None = None) -> jax.Array:
        """x: (B, T, D) queries; kv: (B, S, Dkv) keys = values (x when None);
        mask: bool broadcastable to (B, 1|heads, T, S), True = may attend."""
        kv = x if kv is None else kv
        q = self._split(self.query(x))
        k = self._split(self.key(kv))
        v = self._split(self.value(kv))
        scale = self.head_dim ** -0.5
        bias = None
        if self.rel_pos:
            t = x.shape[1]
            pos = self._split(self.pos(relative_positions(t, x.shape[-1]).astype(self.dtype)))
            qv = (q + self.pos_bias_v.value.astype(q.dtype))
            bd = jnp.einsum("bthd,phd->bhtp", qv, pos, preferred_element_type=jnp.float32)
            bias = rel_shift(bd) * scale
            q = q + self.pos_bias_u.value.astype(q.dtype)
        # Dropout on attention weights is not applied (dot_product_attention is fused); the
        # output dropout below regularises the block as in auto_avsr's encoder recipes.
        y = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale)
        y = y.reshape(*y.shape[:-2], -1)
        return self.dropout(self.out(y))
