"""Visual front end: 3D conv stem + ResNet-18 trunk applied per frame (auto_avsr's Conv3dResNet).

(B, T, H, W) mouth crops → (B, T, C) frame features (C = 512 at width 64).

Input: uint8 pixels as the input pipeline sends them (a quarter of float32's bytes on the
host-to-device copy), normalised here (`normalize`); float video is taken as normalised already.

Padding safety: padded frames are zeroed (after normalisation) before the stem, so the 5-frame
temporal kernel sees zeros beyond a clip's end whether or not the batch is padded; every later
op is per frame.
Activation (config `model.frontend_act`): swish, as auto_avsr (the default); "prelu" (per-channel
slopes, AV-HuBERT's ResNet) or "relu".
Normalisation is `MaskedNorm` (config `model.norm`): BatchNorm by default, as auto_avsr, with
training statistics over valid frames only (so padding cannot shift them) and running averages
at evaluation; "group" switches to per-frame GroupNorm, which needs no batch statistics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax.models.layers import Activation, Dtype, MaskedNorm, masked_fill_zero
from lipjax.schema import MEAN, STD

STEM_FRAMES = 5  # temporal extent of the stem (auto_avsr's Conv3d kernel 5x7x7)


def normalize(video: jax.Array) -> jax.Array:
    """uint8 pixels → (pixel / 255 - MEAN) / STD in float32 (one multiply-add, as the host did
    before video went to the device as uint8); float video is returned unchanged."""
    if video.dtype != jnp.uint8:
        return video
    scale = jnp.float32(1.0 / (255.0 * STD))
    return video.astype(jnp.float32) * scale - jnp.float32(MEAN / STD)


class BasicBlock(nnx.Module):
    """ResNet basic block (two 3×3 convs); swish by default, as auto_avsr's
    `relu_type="swish"`."""

    def __init__(self, cin: int, cout: int, stride: int, norm: str, *, act: str = "swish",
                 dtype: Dtype, rngs: nnx.Rngs) -> None:
        conv = lambda i, o, k, s, p: nnx.Conv(i, o, (k, k), (s, s), padding=((p, p), (p, p)),
                                              use_bias=False, dtype=dtype, rngs=rngs)
        self.conv1, self.norm1 = conv(cin, cout, 3, stride, 1), MaskedNorm(cout, norm,
                                                                            dtype=dtype, rngs=rngs)
        self.conv2, self.norm2 = conv(cout, cout, 3, 1, 1), MaskedNorm(cout, norm, dtype=dtype,
                                                                        rngs=rngs)
        needs_down = stride != 1 or cin != cout
        self.down = nnx.data(conv(cin, cout, 1, stride, 0) if needs_down else None)
        self.down_norm = nnx.data(MaskedNorm(cout, norm, dtype=dtype, rngs=rngs)
                                  if needs_down else None)
        self.act1, self.act2 = Activation(act, cout), Activation(act, cout)

    def __call__(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        y = self.act1(self.norm1(self.conv1(x), mask))
        y = self.norm2(self.conv2(y), mask)
        res = x if self.down is None else self.down_norm(self.down(x), mask)
        return self.act2(y + res)


class Frontend(nnx.Module):
    """Conv3d(1→w, 5×7×7, stride 1×2×2) + max-pool + ResNet-18 ([2,2,2,2] blocks, widths
    w, 2w, 4w, 8w) + global average pool. `width` = 64 is auto_avsr; smaller widths give
    the tiny/small configs that train on a CPU."""

    def __init__(self, width: int = 64, norm: str = "batch", *, act: str = "swish",
                 dtype: Dtype = jnp.float32, remat: bool | str = False,
                 rngs: nnx.Rngs) -> None:
        # The 5x7x7 Conv3d with one input channel, computed as a 2D conv over each frame's 5
        # neighbouring frames stacked as channels: the same function and FLOPs, far faster on
        # XLA:CPU, whose 3D convolutions are slow (BENCHMARKS.md). Kernel (7, 7, 5, w) =
        # Conv3d kernel (5, 7, 7, 1, w) with the time axis moved to the input channels.
        self.stem = nnx.Conv(STEM_FRAMES, width, (7, 7), (2, 2), padding=((3, 3), (3, 3)),
                             use_bias=False, dtype=dtype, rngs=rngs)
        self.stem_norm = MaskedNorm(width, norm, dtype=dtype, rngs=rngs)
        self.stem_act = Activation(act, width)
        blocks, cin = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            for i in range(2):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(cin, cout, stride, norm, act=act, dtype=dtype,
                                         rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.out_dim = cin
        self.remat = remat

    def stem_conv(self, video: jax.Array) -> jax.Array:
        """(B, T, H, W) → (B, T, H/2, W/2, w): the Conv3d stem, zero-padded in time."""
        b, t = video.shape[:2]
        half = STEM_FRAMES // 2
        x = jnp.pad(video.astype(self.stem.dtype or jnp.float32),
                    ((0, 0), (half, half), (0, 0), (0, 0)))
        x = jnp.stack([x[:, k:k + t] for k in range(STEM_FRAMES)], axis=-1)  # (B, T, H, W, 5)
        x = self.stem(x.reshape(b * t, *x.shape[2:]))
        return x.reshape(b, t, *x.shape[1:])

    def __call__(self, video: jax.Array, mask: jax.Array | None = None) -> jax.Array:
        """video: (B, T, H, W) uint8 pixels or normalised float; mask: (B, T) bool →
        (B, T, 8·width), zeros at padding."""
        b, t = video.shape[:2]
        if mask is None:
            mask = jnp.ones((b, t), bool)
        x = self.stem_conv(masked_fill_zero(normalize(video), mask))
        x = self.stem_act(self.stem_norm(x, mask))
        x = x.reshape(b * t, *x.shape[2:])
        x = nnx.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
        fmask = mask.reshape(b * t)
        for block in self.blocks:
            if self.remat:
                x = nnx.remat(lambda blk, h, m: blk(h, m))(block, x, fmask)
            else:
                x = block(x, fmask)
        x = jnp.mean(x, axis=(1, 2)).reshape(b, t, -1)
        return masked_fill_zero(x, mask)
