"""Sequence encoders: the Conformer (Gulati et al. 2020, ESPnet/auto_avsr layout) and a plain
pre-LN Transformer, behind one `Encoder` class.

Conformer block: ½ macaron FFN → relative-position MHSA → conv module (pointwise + GLU,
depthwise kernel 31, norm, swish, pointwise) → ½ FFN → LayerNorm. The depthwise conv zeroes
padded frames first, so a valid frame's receptive field sees the same zeros at a clip's end as an
unpadded clip would; attention masks padded keys. Both make outputs at valid frames independent
of padding. The Transformer option (absolute sinusoidal positions) is the memory encoder of the
LMDecoder and the ablation of the visual encoder.

Options that pretrained checkpoints need (defaults keep lipjax's own models as they were):
`ffn_act` (auto_avsr's feed-forward uses ReLU, fairseq's GELU; lipjax's default swish),
`final_norm` (a LayerNorm after the last Conformer block: ESPnet's `after_norm`) and
`norm_eps` (ESPnet's LayerNorms use 1e-12, fairseq's 1e-5).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.attention import MultiHeadAttention
from lipjax.models.layers import Dtype, MaskedNorm, activation, masked_fill_zero, sinusoid
from lipjax.models.stack import LayerStack


class FeedForward(nnx.Module):
    def __init__(self, dim: int, hidden: int, dropout: float, *, act: str = "swish",
                 dtype: Dtype, rngs: nnx.Rngs) -> None:
        self.up = nnx.Linear(dim, hidden, dtype=dtype, rngs=rngs)
        self.down = nnx.Linear(hidden, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.act = activation(act)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.dropout(self.down(self.dropout(self.act(self.up(x)))))


def depthwise_conv1d(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """Same-padded depthwise conv over time: x (B, T, C), kernel (K, 1, C) → (B, T, C).

    On a CPU it is computed as K shifted multiply-adds, which XLA fuses into one loop: XLA:CPU's
    grouped convolution took about 95 ms per Conformer layer (fwd + bwd, small, 8 × 75 frames)
    against 6 for the shifted form. Other backends keep the grouped convolution (cuDNN's
    depthwise kernels). Both compute the same sums (tests/test_models.py)."""
    k = kernel.shape[0]
    pad = ((0, 0), (k // 2, k // 2), (0, 0))

    def shifted(x: jax.Array, kernel: jax.Array) -> jax.Array:
        xp, t = jnp.pad(x, pad), x.shape[1]
        return sum(xp[:, i:i + t] * kernel[i, 0] for i in range(k))

    def grouped(x: jax.Array, kernel: jax.Array) -> jax.Array:
        return jax.lax.conv_general_dilated(x, kernel, (1,), pad[1:2],
                                            dimension_numbers=("NWC", "WIO", "NWC"),
                                            feature_group_count=x.shape[-1])

    return jax.lax.platform_dependent(x, kernel, cpu=shifted, default=grouped)


class DepthwiseConv1D(nnx.Module):
    """Depthwise conv over time with bias; parameters named and shaped as nnx.Conv's with
    feature_group_count=dim (kernel (K, 1, dim), bias (dim,)), so checkpoints carry over."""

    def __init__(self, dim: int, kernel: int, *, dtype: Dtype, rngs: nnx.Rngs) -> None:
        self.kernel = nnx.Param(nnx.initializers.lecun_normal()(rngs.params(), (kernel, 1, dim)))
        self.bias = nnx.Param(jnp.zeros((dim,)))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        dtype = self.dtype or x.dtype
        y = depthwise_conv1d(x.astype(dtype), self.kernel[...].astype(dtype))
        return y + self.bias[...].astype(dtype)


class ConvModule(nnx.Module):
    """Conformer convolution module with a padding-safe depthwise conv."""

    def __init__(self, dim: int, kernel: int, dropout: float, norm: str, *, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        self.pointwise1 = nnx.Linear(dim, 2 * dim, dtype=dtype, rngs=rngs)
        self.depthwise = DepthwiseConv1D(dim, kernel, dtype=dtype, rngs=rngs)
        self.norm = MaskedNorm(dim, norm, dtype=dtype, rngs=rngs)
        self.pointwise2 = nnx.Linear(dim, dim, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        x = nnx.glu(self.pointwise1(x), axis=-1)
        x = self.depthwise(masked_fill_zero(x, mask))
        x = nnx.swish(self.norm(x, mask))
        return self.dropout(self.pointwise2(x))


class ConformerBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, ffn: int, kernel: int, dropout: float, norm: str,
                 *, ffn_act: str = "swish", norm_eps: float = 1e-6, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        ln = lambda: nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
        ff = lambda: FeedForward(dim, ffn, dropout, act=ffn_act, dtype=dtype, rngs=rngs)
        self.ff1_norm, self.ff1 = ln(), ff()
        self.attn_norm = ln()
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout, rel_pos=True, dtype=dtype,
                                       rngs=rngs)
        self.conv_norm = ln()
        self.conv = ConvModule(dim, kernel, dropout, norm, dtype=dtype, rngs=rngs)
        self.ff2_norm, self.ff2 = ln(), ff()
        self.out_norm = ln()

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        attn_mask = None if mask is None else mask[:, None, None, :]
        x = x + 0.5 * self.ff1(self.ff1_norm(x))
        x = x + self.attn(self.attn_norm(x), mask=attn_mask)
        x = x + self.conv(self.conv_norm(x), mask)
        x = x + 0.5 * self.ff2(self.ff2_norm(x))
        return self.out_norm(x)


class TransformerBlock(nnx.Module):
    """Pre-LN Transformer encoder layer."""

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, *, ffn_act: str = "swish",
                 norm_eps: float = 1e-6, dtype: Dtype, rngs: nnx.Rngs) -> None:
        self.attn_norm = nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
        self.attn = MultiHeadAttention(dim, heads, dropout=dropout, dtype=dtype, rngs=rngs)
        self.ff_norm = nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
        self.ff = FeedForward(dim, ffn, dropout, act=ffn_act, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        attn_mask = None if mask is None else mask[:, None, None, :]
        x = x + self.attn(self.attn_norm(x), mask=attn_mask)
        return x + self.ff(self.ff_norm(x))


class Encoder(nnx.Module):
    """Input projection (in_dim → dim, scaled by √dim as ESPnet) + position information +
    `layers` blocks + final LayerNorm. kind="conformer" (relative positions inside attention;
    the final LayerNorm only with `final_norm`, each block ends in its own) or "transformer"
    (absolute sinusoidal positions added to the input; always a final LayerNorm)."""

    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, ffn: int, *,
                 kind: str = "conformer", kernel: int = 31, dropout: float = 0.1,
                 norm: str = "batch", ffn_act: str = "swish", final_norm: bool = False,
                 norm_eps: float = 1e-6, dtype: Dtype = jnp.float32,
                 remat: bool | str = False, rngs: nnx.Rngs) -> None:
        if kind not in ("conformer", "transformer"):
            raise ValueError(f"config model.encoder: expected 'conformer' or 'transformer', "
                             f"found {kind!r}")
        self.kind, self.dim = kind, dim
        self.embed = nnx.data(None if in_dim == dim
                              else nnx.Linear(in_dim, dim, dtype=dtype, rngs=rngs))
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        if kind == "conformer":
            make = lambda r: ConformerBlock(dim, heads, ffn, kernel, dropout, norm,
                                            ffn_act=ffn_act, norm_eps=norm_eps, dtype=dtype,
                                            rngs=r)
        else:
            make = lambda r: TransformerBlock(dim, heads, ffn, dropout, ffn_act=ffn_act,
                                              norm_eps=norm_eps, dtype=dtype, rngs=r)
        self.layers = LayerStack(make, layers, remat=remat, rngs=rngs)
        self.final_norm = nnx.data(nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
                                   if kind == "transformer" or final_norm else None)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """x: (B, T, in_dim); mask: (B, T) bool → (B, T, dim), zeros at padding."""
        if self.embed is not None:
            x = self.embed(x)
        x = x * math.sqrt(self.dim)
        if self.kind == "transformer":
            x = x + sinusoid(jnp.arange(x.shape[1]), self.dim).astype(x.dtype)
        x = self.dropout(x)
        x = self.layers(x, mask)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return masked_fill_zero(x, mask)
