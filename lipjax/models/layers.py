"""Small building blocks shared by every lipjax model: padding-safe norms and position codes.

Every model in lipjax takes a boolean `mask` next to its inputs. The rule the blocks keep is
that padding never changes the outputs at valid positions, so length buckets (which pad each
batch to a few fixed shapes) cannot change what a model computes for a clip.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

Dtype = jnp.dtype | type


def compute_dtype(name: str | None) -> Dtype:
    """Maps the config string (`train.dtype`) to the compute dtype; parameters stay float32."""
    name = name or "float32"
    if name not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"config train.dtype: expected 'float32' or 'bfloat16', found {name!r}")
    return jnp.dtype(name)


class MaskedNorm(nnx.Module):
    """Normalisation over channels whose statistics never see padded frames.

    kind="batch": BatchNorm whose training statistics are taken over valid frames only (the
    `mask` argument), and running averages at evaluation, so each frame's output depends on the
    clip's valid frames alone. This matches auto_avsr (BatchNorm everywhere) and is the fastest.
    kind="group": GroupNorm, statistics per frame (per sample of the leading axis): needs no
    batch statistics at all, safe for tiny batches. kind="layer": LayerNorm over channels.
    """

    def __init__(self, features: int, kind: str = "batch", *, dtype: Dtype = jnp.float32,
                 rngs: nnx.Rngs) -> None:
        self.kind = kind
        if kind == "batch":
            self.norm = nnx.BatchNorm(features, momentum=0.9, epsilon=1e-5, dtype=dtype,
                                      rngs=rngs)
        elif kind == "group":
            self.norm = nnx.GroupNorm(features, num_groups=math.gcd(32, features), dtype=dtype,
                                      rngs=rngs)
        elif kind == "layer":
            self.norm = nnx.LayerNorm(features, dtype=dtype, rngs=rngs)
        else:
            raise ValueError(f"config model.norm: expected 'batch', 'group' or 'layer', "
                             f"found {kind!r}")

    def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """x: (N, ..., C); mask: bool, broadcastable to x[..., :1] (True = valid)."""
        if self.kind == "batch":
            if mask is None:
                return self.norm(x)
            full = jnp.broadcast_to(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)),
                                    x.shape)
            return self.norm(x, mask=full)
        if self.kind == "group":
            # GroupNorm pools over every axis after the first: make each frame a sample, so
            # (B, T, H, W, C) → (B·T, H, W, C) and (B, T, C) → (B·T, 1, C).
            lead = 1 if mask is None else mask.ndim
            frames = x.reshape((-1,) + x.shape[lead:])
            if frames.ndim == 2:
                frames = frames[:, None]
            return self.norm(frames).reshape(x.shape)
        return self.norm(x)


def sinusoid(positions: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal codes (Vaswani et al.) for (possibly negative) positions: (..., dim) float32."""
    div = jnp.exp(jnp.arange(0, dim, 2, dtype=jnp.float32) * (-math.log(10000.0) / dim))
    ang = positions.astype(jnp.float32)[..., None] * div
    out = jnp.stack([jnp.sin(ang), jnp.cos(ang)], axis=-1)
    return out.reshape(positions.shape + (dim,))


def relative_positions(length: int, dim: int) -> jax.Array:
    """Codes for relative positions length-1, ..., -(length-1) (ESPnet's order): (2L-1, dim)."""
    return sinusoid(jnp.arange(length - 1, -length, -1), dim)


def causal_mask(length: int) -> jax.Array:
    return jnp.asarray(np.tril(np.ones((length, length), dtype=bool)))


def masked_fill_zero(x: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Zeros padded positions: x (B, T, ...) and mask (B, T)."""
    if mask is None:
        return x
    return jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - mask.ndim)), x,
                     jnp.zeros((), x.dtype))


def gelu_exact(x: jax.Array) -> jax.Array:
    """GELU in its erf form, PyTorch's and fairseq's default (jax's default is the tanh one)."""
    return jax.nn.gelu(x, approximate=False)


def activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """The parameter-free activation named by a config value (PReLU has weights: `PReLU`)."""
    table = {"swish": nnx.swish, "relu": nnx.relu, "gelu": gelu_exact}
    if name not in table:
        raise ValueError(f"config model: activation expected one of {sorted(table)}, "
                         f"found {name!r}")
    return table[name]


class PReLU(nnx.Module):
    """Per-channel parametric ReLU (He et al. 2015), as PyTorch's `nn.PReLU(num_parameters=C)`
    that AV-HuBERT's ResNet uses: max(0, x) + slope · min(0, x) over the last axis."""

    def __init__(self, features: int, init: float = 0.25) -> None:
        self.weight = nnx.Param(jnp.full((features,), init, jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        slope = self.weight[...].astype(x.dtype)
        return jnp.where(x >= 0, x, slope * x)


class Activation(nnx.Module):
    """A config-named activation: the parameter-free ones, or "prelu" with its own per-channel
    slopes (the only one that adds parameters, so the others leave checkpoints unchanged)."""

    def __init__(self, name: str, features: int) -> None:
        self.prelu = nnx.data(PReLU(features) if name == "prelu" else None)
        self.fn = None if name == "prelu" else activation(name)

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.prelu(x) if self.prelu is not None else self.fn(x)
