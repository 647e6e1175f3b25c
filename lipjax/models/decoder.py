"""Autoregressive Transformer decoder (pre-LN, ESPnet/fairseq layout) over SentencePiece ids.

Token ids are `lipjax.schema`'s: PAD 0, UNK 1, BOS 2, EOS 3. The decoder sees
[BOS, t1, ..., tL] and predicts [t1, ..., tL, EOS]; the causal mask alone makes valid positions
independent of padding after them, and `memory_mask` hides padded encoder frames.
(A decoder imported from auto_avsr keeps auto_avsr's ids instead: lipjax/io/auto_avsr.py.)

Options that pretrained checkpoints need (defaults keep lipjax's own decoders as they were):
`ffn_act` (ESPnet's feed-forward uses ReLU; lipjax's default swish) and `norm_eps` (ESPnet's
LayerNorms use 1e-12; flax's default 1e-6). The positions are already ESPnet's: sin and cos
interleaved (`layers.sinusoid`), added to the embedding scaled by √dim.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

from lipjax.models.attention import MultiHeadAttention
from lipjax.models.conformer import FeedForward
from lipjax.models.layers import Dtype, causal_mask, sinusoid
from lipjax.models.stack import LayerStack
from lipjax.schema import BOS, EOS, PAD


class DecoderBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, *,
                 ffn_act: str = "swish", norm_eps: float = 1e-6, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        ln = lambda: nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
        self.self_norm, self.cross_norm, self.ff_norm = ln(), ln(), ln()
        self.self_attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.cross_attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.ff = FeedForward(dim, ffn, dropout, act=ffn_act, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, memory: jax.Array, self_mask: jax.Array,
                 memory_mask: jax.Array | None) -> jax.Array:
        x = x + self.self_attn(self.self_norm(x), mask=self_mask)
        x = x + self.cross_attn(self.cross_norm(x), memory, mask=memory_mask)
        return x + self.ff(self.ff_norm(x))

    def step(self, x: jax.Array, position: jax.Array, keys: jax.Array, values: jax.Array,
             cross_keys: jax.Array, cross_values: jax.Array, memory_mask: jax.Array | None,
             ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """One position of `__call__`: x (N, 1, D) at `position`; keys/values (N, L, H, Dh)
        this layer's cache, cross_keys/values (N, T, H, Dh) its projected encoder states
        (`cross_cache`). Returns (x, this position's key, value), each row (N, 1, H, Dh)."""
        h = self.self_norm(x)
        attn = self.self_attn
        key, value = attn._split(attn.key(h)), attn._split(attn.value(h))
        keys = lax.dynamic_update_slice_in_dim(keys, key, position, axis=1)
        values = lax.dynamic_update_slice_in_dim(values, value, position, axis=1)
        seen = (jnp.arange(keys.shape[1]) <= position)[None, None, None]
        x = x + _attend(attn, attn._split(attn.query(h)), keys, values, seen)
        h = self.cross_norm(x)
        cross = self.cross_attn
        x = x + _attend(cross, cross._split(cross.query(h)), cross_keys, cross_values,
                        memory_mask)
        return x + self.ff(self.ff_norm(x)), key, value

    def cross_cache(self, memory: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The cross-attention's keys and values of the encoder states, computed once per
        utterance instead of at every step."""
        cross = self.cross_attn
        return cross._split(cross.key(memory)), cross._split(cross.value(memory))


def _attend(attn: MultiHeadAttention, q: jax.Array, k: jax.Array, v: jax.Array,
            mask: jax.Array | None) -> jax.Array:
    """`MultiHeadAttention.__call__` after its projections (plain attention, no positions)."""
    y = jax.nn.dot_product_attention(q, k, v, mask=mask, scale=attn.head_dim ** -0.5)
    return attn.dropout(attn.out(y.reshape(*y.shape[:-2], -1)))


class TransformerDecoder(nnx.Module):
    """Token embedding (×√dim) + sinusoidal positions + `layers` blocks + LayerNorm + logits;
    `ffn_act` and `norm_eps` as in the module docstring."""

    def __init__(self, vocab: int, dim: int, layers: int, heads: int, ffn: int, *,
                 dropout: float = 0.1, ffn_act: str = "swish", norm_eps: float = 1e-6,
                 dtype: Dtype = jnp.float32, remat: bool | str = False,
                 rngs: nnx.Rngs) -> None:
        self.dim = dim
        self.embed = nnx.Embed(vocab, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.layers = LayerStack(
            lambda r: DecoderBlock(dim, heads, ffn, dropout, ffn_act=ffn_act, norm_eps=norm_eps,
                                   dtype=dtype, rngs=r), layers, remat=remat, rngs=rngs)
        self.final_norm = nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
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

    def init_cache(self, memory: jax.Array, length: int) -> dict[str, jax.Array]:
        """The incremental decoder's state for `length` positions: every layer's self-attention
        keys and values (zeros until written) and its cross-attention keys and values of
        `memory` (B, T, D). Every entry is (layers, B, ...): the batch is axis 1."""

        def cross(block: DecoderBlock, m: jax.Array) -> tuple[jax.Array, jax.Array]:
            return block.cross_cache(m)

        cross_keys, cross_values = nnx.vmap(cross, in_axes=(0, None), out_axes=0,
                                            graph=False)(self.layers.blocks, memory)
        self_shape = cross_keys.shape[:2] + (length,) + cross_keys.shape[3:]
        zeros = jnp.zeros(self_shape, cross_keys.dtype)
        return {"keys": zeros, "values": zeros, "cross_keys": cross_keys,
                "cross_values": cross_values}

    def step(self, cache: dict[str, jax.Array], tokens: jax.Array, position: jax.Array,
             memory_mask: jax.Array | None = None) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The logits at `position` given the token there, (B,) → float32 (B, vocab), and the
        cache with that position's keys and values written: the same logits as `__call__` on
        the whole prefix, at the cost of one position instead of all of them."""
        x = self.embed(tokens[:, None]) * math.sqrt(self.dim)
        x = self.dropout(x + sinusoid(position[None], self.dim).astype(x.dtype))
        mem_mask = None if memory_mask is None else memory_mask[:, None, None, :]

        def apply(block: DecoderBlock, h: jax.Array, keys: jax.Array, values: jax.Array,
                  cross_keys: jax.Array, cross_values: jax.Array):
            h, key, value = block.step(h, position, keys, values, cross_keys, cross_values,
                                       mem_mask)
            return h, (key, value)

        scan = nnx.scan(apply, in_axes=(0, nnx.Carry, 0, 0, 0, 0),
                        out_axes=(nnx.Carry, (0, 0)), graph=False)
        x, (key, value) = scan(self.layers.blocks, x, cache["keys"], cache["values"],
                               cache["cross_keys"], cache["cross_values"])
        cache = dict(cache,
                     keys=lax.dynamic_update_slice_in_dim(cache["keys"], key, position, 2),
                     values=lax.dynamic_update_slice_in_dim(cache["values"], value, position, 2))
        return self.logits(self.final_norm(x[:, 0])).astype(jnp.float32), cache


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
