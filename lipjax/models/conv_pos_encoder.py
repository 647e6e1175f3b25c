"""AV-HuBERT's encoder (Shi et al. 2022): a pre-norm Transformer whose positions come from a
convolution, fed by the fusion of an audio and a visual stream.

    video features (B, T, in_dim) → proj → [zeros | video] (the audio half zero: one modality,
    as AV-HuBERT runs lip reading) → LayerNorm(2·dim) → post_extract_proj → + ConvPosition
    → pre-LN Transformer layers (GELU FFN) → LayerNorm

A sibling of `conformer.Encoder` rather than an option of it: its input (the two-stream fusion)
and its positions (a convolution added once, not scaled embeddings or relative attention) share
nothing with that class but the layers, which are `conformer.TransformerBlock`. Parameter names
follow the fairseq modules they mirror, so an importer maps keys one to one.

Padding: padded frames are zeroed before the position convolution, so a valid frame sees the
same zeros beyond a clip's end as an unpadded clip would (fairseq zeroes them too); attention
masks padded keys.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.conformer import TransformerBlock
from lipjax.models.layers import Dtype, gelu_exact, masked_fill_zero
from lipjax.models.stack import LayerStack


class ConvPosition(nnx.Module):
    """wav2vec 2.0's convolutional position embedding: a grouped conv over time (kernel K,
    weight-normalised per kernel tap as `weight_norm(dim=2)`), trimmed to the input length
    (fairseq pads K//2 on both sides and drops the last output for even K), then GELU.

    Parameters: `weight_v` (K, dim/groups, dim) and `weight_g` (K,) (the direction and the
    per-tap norm, trained as such), `bias` (dim,)."""

    def __init__(self, dim: int, kernel: int, groups: int, *, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        if dim % groups:
            raise ValueError(f"config model.pos_conv_groups={groups} does not divide "
                             f"model.dim={dim}")
        std = (4.0 / (kernel * dim)) ** 0.5
        v = std * jax.random.normal(rngs.params(), (kernel, dim // groups, dim))
        self.weight_v = nnx.Param(v)
        self.weight_g = nnx.Param(jnp.sqrt(jnp.sum(v * v, axis=(1, 2))))
        self.bias = nnx.Param(jnp.zeros((dim,)))
        self.kernel, self.groups, self.dtype = kernel, groups, dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        v = self.weight_v[...]
        norm = jnp.sqrt(jnp.sum(v * v, axis=(1, 2), keepdims=True))
        w = (self.weight_g[...][:, None, None] * v / norm).astype(self.dtype or x.dtype)
        left = self.kernel // 2
        right = left - 1 if self.kernel % 2 == 0 else left
        y = jax.lax.conv_general_dilated(x.astype(w.dtype), w, (1,), [(left, right)],
                                         dimension_numbers=("NWC", "WIO", "NWC"),
                                         feature_group_count=self.groups)
        return gelu_exact(y + self.bias[...].astype(y.dtype))


class ModalityFusion(nnx.Module):
    """AV-HuBERT's input: each stream projected to dim, concatenated (audio first), LayerNorm,
    projected back to dim. Only the visual stream exists here: the audio half is zero, which is
    what AV-HuBERT feeds when a modality is missing."""

    def __init__(self, in_dim: int, dim: int, *, norm_eps: float, dtype: Dtype,
                 rngs: nnx.Rngs) -> None:
        self.proj = nnx.Linear(in_dim, dim, dtype=dtype, rngs=rngs)
        self.layer_norm = nnx.LayerNorm(2 * dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)
        self.post_extract_proj = nnx.Linear(2 * dim, dim, dtype=dtype, rngs=rngs)

    def __call__(self, video: jax.Array) -> jax.Array:
        v = self.proj(video)
        fused = jnp.concatenate([jnp.zeros_like(v), v], axis=-1)
        return self.post_extract_proj(self.layer_norm(fused))


class ConvPosEncoder(nnx.Module):
    """Fusion + conv positions + `layers` pre-LN Transformer blocks + final LayerNorm, with the
    call signature of `conformer.Encoder`: (B, T, in_dim), mask (B, T) → (B, T, dim)."""

    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, ffn: int, *,
                 pos_kernel: int = 128, pos_groups: int = 16, dropout: float = 0.1,
                 ffn_act: str = "gelu", norm_eps: float = 1e-5, dtype: Dtype = jnp.float32,
                 remat: bool | str = False, rngs: nnx.Rngs) -> None:
        self.dim = dim
        self.fusion = ModalityFusion(in_dim, dim, norm_eps=norm_eps, dtype=dtype, rngs=rngs)
        self.pos_conv = ConvPosition(dim, pos_kernel, pos_groups, dtype=dtype, rngs=rngs)
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        make = lambda r: TransformerBlock(dim, heads, ffn, dropout, ffn_act=ffn_act,
                                          norm_eps=norm_eps, dtype=dtype, rngs=r)
        self.layers = LayerStack(make, layers, remat=remat, rngs=rngs)
        self.final_norm = nnx.LayerNorm(dim, epsilon=norm_eps, dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        x = masked_fill_zero(self.dropout(self.fusion(x)), mask)
        x = self.dropout(x + self.pos_conv(x))
        x = self.final_norm(self.layers(x, mask))
        return masked_fill_zero(x, mask)
