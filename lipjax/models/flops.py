"""Analytic training FLOPs per video frame, for MFU.

XLA's cost analysis misses cuDNN convolutions on GPU, so throughput is converted to FLOP/s with
this count instead. It counts what PyTorch's FlopCounterMode counts: convolutions, matrix
multiplies and the two attention matmuls (scores and weighted values), 2 FLOPs per
multiply-add; norms, activations, pooling and softmax are ignored. Training = 3 × forward
(backward: one product for the input gradient and one for the weight gradient).

What is counted follows the model of `config.task`:
  units_pretrain (stage 1, `VisualUnitModel`): frontend → visual encoder → unit head [+ LID head];
  lmdecoder (stage 2, `LMDecoderModel`): unit embedding → [memory encoder] → decoder + CTC head;
  finetune (stage 3, `LipReader`): frontend → visual encoder → [memory read] → [memory encoder]
    → decoder + CTC head. With memory_addressing="none" and memory_layers=0 this is auto_avsr's VSR
    model exactly.
Activation recomputation (train.remat) is not counted: the result is model FLOPs (MFU), not
hardware FLOPs.
"""

from __future__ import annotations

import ml_collections

from lipjax.models import factory


def _conv_out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


def frontend_flops(width: int, crop: int = 88) -> float:
    """Forward FLOPs of the 3D stem + ResNet-18 trunk for one frame."""
    s = _conv_out(crop, 7, 2, 3)
    flops = 2.0 * s * s * width * (5 * 7 * 7)
    s = _conv_out(s, 3, 2, 1)  # max-pool
    cin = width
    for stage, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            s_out = _conv_out(s, 3, stride, 1)
            flops += 2.0 * s_out * s_out * cout * 9 * cin  # conv1
            flops += 2.0 * s_out * s_out * cout * 9 * cout  # conv2
            if stride != 1 or cin != cout:
                flops += 2.0 * s_out * s_out * cout * cin  # 1x1 downsample
            s, cin = s_out, cout
    return flops


def encoder_layer_flops(kind: str, d: int, ffn: int, kernel: int, frames: int,
                        batch: int = 1) -> float:
    """Forward FLOPs of one encoder layer for one clip of `frames` frames."""
    t = frames
    attn = 4 * 2.0 * d * d * t + 2 * 2.0 * t * t * d  # q,k,v,o + scores + values
    if kind == "transformer":
        return attn + 2 * 2.0 * d * ffn * t
    rel = 2.0 * t * (2 * t - 1) * d + 2.0 * (2 * t - 1) * d * d / batch  # (q+v)·p, p projection
    conv = 2.0 * d * 2 * d * t + 2.0 * kernel * d * t + 2.0 * d * d * t
    return attn + rel + conv + 2 * 2 * 2.0 * d * ffn * t  # two (macaron) feed-forwards


def decoder_flops(d: int, ffn: int, layers: int, vocab: int, tokens: int, frames: int) -> float:
    """Forward FLOPs of the Transformer decoder on tokens + 1 inputs (BOS + targets)."""
    n = tokens + 1
    per_layer = (4 * 2.0 * d * d * n + 2 * 2.0 * n * n * d  # self-attention
                 + 2 * 2.0 * d * d * n + 2 * 2.0 * d * d * frames  # cross: q,o and k,v
                 + 2 * 2.0 * n * frames * d  # cross scores + values
                 + 2 * 2.0 * d * ffn * n)
    return layers * per_layer + 2.0 * d * vocab * n


def visual_flops_per_clip(config: ml_collections.ConfigDict, frames: int,
                          batch: int = 1) -> float:
    """Forward FLOPs of frontend + feature projection + visual encoder for one clip."""
    g = lambda k: factory.get(config, k)
    d, width = g("dim"), g("frontend_width")
    crop = int(config.get("data", {}).get("crop", 88))
    flops = frames * frontend_flops(width, crop)
    if 8 * width != d:
        flops += 2.0 * 8 * width * d * frames  # frontend features → encoder width
    flops += g("layers") * encoder_layer_flops(g("encoder"), d, g("ffn"), g("kernel"), frames,
                                               batch)
    return flops


def units_pretrain_forward_flops_per_clip(config: ml_collections.ConfigDict, frames: int,
                                          batch: int = 1) -> float:
    """Stage 1: visual encoder + unit head (+ LID head on the pooled states)."""
    d = factory.get(config, "dim")
    flops = visual_flops_per_clip(config, frames, batch)
    flops += 2.0 * d * factory.unit_vocab(config) * frames  # unit head
    if factory.lid_weight(config) > 0:
        flops += 2.0 * d * d + 2.0 * d * factory.num_languages(config)
    return flops


def lmdecoder_forward_flops_per_clip(config: ml_collections.ConfigDict, units: int,
                                     tokens: int) -> float:
    """Stage 2 on `units` input units (embedding lookups are free): memory encoder + CTC head +
    decoder."""
    g = lambda k: factory.get(config, k)
    d, ffn, vocab = g("dim"), g("ffn"), g("text_vocab")
    flops = g("memory_layers") * encoder_layer_flops("transformer", d, ffn, 0, units)
    flops += 2.0 * d * vocab * units  # CTC head
    return flops + decoder_flops(d, ffn, g("decoder_layers"), vocab, tokens, units)


def forward_flops_per_clip(config: ml_collections.ConfigDict, frames: int, tokens: int,
                           batch: int = 1) -> float:
    """Stage 3 (`LipReader`) forward FLOPs for one clip."""
    g = lambda k: factory.get(config, k)
    d, ffn = g("dim"), g("ffn")
    vocab = g("text_vocab")
    flops = visual_flops_per_clip(config, frames, batch)
    if g("memory_addressing") != "none":
        k = factory.unit_vocab(config)
        flops += 2 * 2.0 * d * d * frames + 2 * 2.0 * d * d * k + 2 * 2.0 * frames * k * d
    flops += g("memory_layers") * encoder_layer_flops("transformer", d, ffn, 0, frames)
    flops += 2.0 * d * vocab * frames  # CTC head
    flops += decoder_flops(d, ffn, g("decoder_layers"), vocab, tokens, frames)
    return flops


def flops_per_frame(config: ml_collections.ConfigDict, frames: int = 75, tokens: int = 30,
                    batch: int = 1, units: int | None = None) -> float:
    """Training FLOPs (forward + backward ≈ 3 × forward) per video frame of the model of
    `config.task` (default finetune) for clips of `frames` frames with `tokens` target tokens;
    `batch` only shares the relative-position projection (computed once per batch). The
    lmdecoder task reads `units` input units per clip (default `frames`) and no video; its count
    is still reported per `frames`."""
    task = config.get("task", "finetune")
    if task == "units_pretrain":
        forward = units_pretrain_forward_flops_per_clip(config, frames, batch)
    elif task == "lmdecoder":
        forward = lmdecoder_forward_flops_per_clip(config, units or frames, tokens)
    else:
        forward = forward_flops_per_clip(config, frames, tokens, batch)
    return 3.0 * forward / frames
