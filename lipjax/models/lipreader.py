"""Lip readers: the stage-1 visual unit model and the stage-3 composed lip reader.

`VisualUnitModel` (stage 1): frontend → visual encoder → shared-unit head + language-ID head.

`LipReader` (stage 3, Kim et al. ICCV 2023): the stage-1 frontend and encoder turn a clip into
visual states; these query the chosen language's LMDecoder memory by cross-attention
(keys = values = the memory's unit embeddings), so a visual frame is re-expressed in the
units the LMDecoder was trained on; an optional residual + LayerNorm keeps the visual
information as well. The result feeds that LMDecoder's memory encoder, CTC head and decoder.
`use_memory=False` skips the memory read: baseline (b) (stage-1 encoder + plain decoder) and,
without loading any checkpoint, baseline (a) (from scratch) are configs of this one model.
The memory-attention projections are shared across languages; the memory itself is the
language's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.attention import MultiHeadAttention
from lipjax.models.conformer import Encoder
from lipjax.models.frontend import Frontend
from lipjax.models.language_id import LanguageID
from lipjax.models.layers import Dtype
from lipjax.models.lmdecoder import LanguageDecoders, language_positions, select
from lipjax.models.unit_head import UnitHead


class VisualUnitModel(nnx.Module):
    def __init__(self, frontend: Frontend, encoder: Encoder, unit_head: UnitHead,
                 lid: LanguageID | None) -> None:
        self.frontend, self.encoder, self.unit_head = frontend, encoder, unit_head
        self.lid = nnx.data(lid)

    def encode(self, video: jax.Array, mask: jax.Array) -> jax.Array:
        return self.encoder(self.frontend(video, mask), mask)

    def __call__(self, video: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        states = self.encode(video, mask)
        out = {"states": states, "unit_logits": self.unit_head(states)}
        if self.lid is not None:
            out["lid_logits"] = self.lid(states, mask)
        return out


class MemoryRead(nnx.Module):
    """Visual states attend over a K × D memory (keys = values = unit embeddings)."""

    def __init__(self, dim: int, heads: int, residual: bool, *, dropout: float = 0.1,
                 dtype: Dtype = jnp.float32, rngs: nnx.Rngs) -> None:
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        if residual:
            # Zero-initialised read (as a ReZero branch): training starts from the plain lip
            # reader and lets the memory in as it helps. With a random-initialised read a tiny
            # model could collapse on a few clips (tests/test_overfit.py, seeds 0 and 2).
            self.attn.out.kernel.value = jnp.zeros_like(self.attn.out.kernel.value)
        self.residual = residual
        self.norm = nnx.data(nnx.LayerNorm(dim, dtype=dtype, rngs=rngs) if residual else None)

    def __call__(self, states: jax.Array, memory: jax.Array) -> jax.Array:
        mem = jnp.broadcast_to(memory.astype(states.dtype)[None],
                               (states.shape[0],) + memory.shape)
        read = self.attn(states, mem)
        return self.norm(states + read) if self.residual else read

    def weights(self, states: jax.Array, memory: jax.Array) -> jax.Array:
        """(B, heads, T, K) attention of each frame over the K memory slots (for plots)."""
        attn = self.attn
        q = attn._split(attn.query(states)).astype(jnp.float32)
        k = attn._split(attn.key(memory.astype(states.dtype))).astype(jnp.float32)
        scores = jnp.einsum("bthd,khd->bhtk", q, k) * attn.head_dim ** -0.5
        return jax.nn.softmax(scores, axis=-1)


class LipReader(nnx.Module):
    def __init__(self, frontend: Frontend, encoder: Encoder, decoders: LanguageDecoders,
                 memory_read: MemoryRead | None) -> None:
        self.frontend, self.encoder, self.decoders = frontend, encoder, decoders
        self.memory_read = nnx.data(memory_read)

    def encode(self, video: jax.Array, mask: jax.Array, language: jax.Array) -> jax.Array:
        """Clip → the chosen LMDecoder's memory-encoder states (B, T, D)."""
        states = self.encoder(self.frontend(video, mask), mask)
        if self.memory_read is not None:
            codes = self.decoders.codes
            reads = [self.memory_read(states, self.decoders.lmdecoders[c].memory())
                     for c in codes]
            pos = None if len(codes) == 1 else language_positions(language, codes)
            states = select(reads, pos)
        return self.decoders.encode(states, mask, language)

    def memory_attention(self, video: jax.Array, mask: jax.Array, code: str) -> jax.Array:
        """(B, heads, T, K): how each frame reads language `code`'s memory."""
        if self.memory_read is None:
            raise ValueError("memory_attention: this lip reader has no memory "
                             "(config model.use_memory=False)")
        states = self.encoder(self.frontend(video, mask), mask)
        return self.memory_read.weights(states, self.decoders.lmdecoders[code].memory())

    def ctc_logits(self, states: jax.Array, language: jax.Array) -> jax.Array:
        return self.decoders.ctc_logits(states, language)

    def decode(self, tokens: jax.Array, states: jax.Array, mask: jax.Array,
               language: jax.Array) -> jax.Array:
        return self.decoders.decode(tokens, states, mask, language)
