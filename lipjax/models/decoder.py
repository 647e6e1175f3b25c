"""Autoregressive Transformer decoder (pre-LN, ESPnet/fairseq layout) over SentencePiece ids.

Token ids are `lipjax.schema`'s: PAD 0, UNK 1, BOS 2, EOS 3. The decoder sees
[BOS, t1, ..., tL] and predicts [t1, ..., tL, EOS]; the causal mask alone makes valid positions
independent of padding after them, and `memory_mask` hides padded encoder frames.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.attention import MultiHeadAttention
from lipjax.models.conformer import FeedForward
from lipjax.models.layers import Dtype, causal_mask, sinusoid
from lipjax.models.stack import LayerStack
from lipjax.schema import BOS, EOS, PAD


class DecoderBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, *, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        ln = lambda: nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.self_norm, self.cross_norm, self.ff_norm = ln(), ln(), ln()
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.ff = FeedForward(dim, ffn, dropout, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, memory: jax.Array, self_mask: jax.Array,
                 memory_mask: jax.Array | None) -> jax.Array:
        x = x + self.self_attn(self.self_norm(x), mask=self_mask)
        x = x + self.cross_attn(self.cross_norm(x), memory, mask=memory_mask)
        return x + self.ff(self.ff_norm(x))


class TransformerDecoder(nnx.Module):
    """Token embedding (×√dim) + sinusoidal positions + `layers` blocks + LayerNorm + logits."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, ffn: int, *,
                 dropout: float = 0.1, dtype: Dtype = jnp.float32, remat: bool | str = False,
                 rngs: nnx.Rngs) -> None:
        self.dim = dim
        self.embed = nnx.Embed(vocab, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.layers = LayerStack(
            lambda r: DecoderBlock(dim, heads, ffn, dropout, dtype=dtype, rngs=r), layers,
            remat=remat, rngs=rngs)
        self.final_norm = nnx.LayerNorm(dim, dtype=dtype, rngs=rngs)
        self.logits = nnx.Linear(dim, vocab, dtype=dtype, rngs=rngs)

    def __call__(self, tokens: jax.Array, memory: jax.Array,
                 memory_mask: jax.Array | None = None) -> jax.Array:
        """tokens: (B, L) decoder inputs (BOS first); memory: (B, T, D); memory_mask: (B, T)
        → float32 logits (B, L, vocab)."""
        x = self.embed(tokens) * math.sqrt(self.dim)
        x = self.dropout(x + sinusoid(jnp.arange(tokens.shape[1]), self.dim).astype(x.dtype))
        self_mask = causal_mask(tokens.shape[1])[None, None]
        mem_mask = None if memory_mask is None else memory_mask[:, None, None, :]
        x = self.layers(x, memory, self_mask, mem_mask)
        return self.logits(self.final_norm(x)).astype(jnp.float32)


def shift_targets(tokens: jax.Array, token_mask: jax.Array) -> tuple[jax.Array, ...]:
    """Pipeline tokens (no BOS/EOS) → (decoder inputs [BOS, t...], targets [t..., EOS],
    target mask), each (B, L+1)."""
    tokens = jnp.where(token_mask, tokens, PAD)
    b = tokens.shape[0]
    lengths = token_mask.sum(-1)
    inputs = jnp.concatenate([jnp.full((b, 1), BOS, tokens.dtype), tokens], axis=1)
    padded = jnp.concatenate([tokens, jnp.full((b, 1), PAD, tokens.dtype)], axis=1)
    pos = jnp.arange(padded.shape[1])[None]
    targets = jnp.where(pos == lengths[:, None], EOS, padded)
    return inputs, targets, pos <= lengths[:, None]
