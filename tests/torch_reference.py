"""PyTorch reference pieces shared by the importer tests (tests/test_import_*.py): the ResNet-18
video front end that auto_avsr and AV-HuBERT both publish (Conv3d stem `frontend3D`, `trunk`),
ESPnet's pre-norm Transformer decoder that auto_avsr publishes (`decoder.*`), random weights,
random clips with padding, and the comparison. Written from the published architectures, with
size parameters so the tests stay small; key names are the published ones.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from lipjax.schema import MEAN, STD


class Swish(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(x)


def make_act(kind: str, channels: int) -> nn.Module:
    return {"swish": Swish, "relu": nn.ReLU,
            "prelu": lambda: nn.PReLU(num_parameters=channels)}[kind]()


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, act: str) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = make_act(act, cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = make_act(act, cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                         nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        res = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + res)


class Trunk(nn.Module):
    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        cin = width
        for i, cout in enumerate((width, 2 * width, 4 * width, 8 * width)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, cout, stride, act),
                                                         BasicBlock(cout, cout, 1, act)))
            cin = cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(4):
            x = getattr(self, f"layer{i + 1}")(x)
        return x.mean(dim=(2, 3))


class VideoFrontEnd(nn.Module):
    """(B, T, H, W) normalised frames → (B, T, 8·width)."""

    def __init__(self, width: int, act: str) -> None:
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, width, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(width), make_act(act, width),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)))
        self.trunk = Trunk(width, act)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        b, t = video.shape[:2]
        x = self.frontend3D(video[:, None])  # (B, C, T, h, w)
        x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])
        return self.trunk(x).reshape(b, t, -1)


def esp_norm(dim: int) -> nn.LayerNorm:
    """ESPnet's LayerNorm: PyTorch's with epsilon 1e-12."""
    return nn.LayerNorm(dim, eps=1e-12)


def sinusoid_table(length: int, dim: int) -> torch.Tensor:
    """ESPnet's PositionalEncoding table for positions 0..length-1: (length, dim), sin at even
    and cos at odd channels."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe = torch.zeros(length, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe


class PositionalEncoding(nn.Module):
    """x·√dim + positions (no parameters: `embed.1` has no keys)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * math.sqrt(self.dim) + sinusoid_table(x.shape[1], self.dim)[None]


class MultiHeadedAttention(nn.Module):
    """ESPnet's plain multi-head attention; mask (B, 1|T1, T2) bool, True = may attend."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linear_q, self.linear_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_v, self.linear_out = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                mask: torch.Tensor | None) -> torch.Tensor:
        b = query.shape[0]
        split = lambda y: y.view(b, -1, self.h, self.d_k).transpose(1, 2)
        q, k = split(self.linear_q(query)), split(self.linear_k(key))
        v = split(self.linear_v(value))
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            hidden = ~mask[:, None]
            scores = scores.masked_fill(hidden, torch.finfo(scores.dtype).min)
            attn = torch.softmax(scores, dim=-1).masked_fill(hidden, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, -1, self.h * self.d_k)
        return self.linear_out(out)


class FeedForward(nn.Module):
    """ESPnet's PositionwiseFeedForward (ReLU)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


class DecoderLayer(nn.Module):
    """ESPnet's DecoderLayer, normalize_before=True, concat_after=False."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, dim)
        self.src_attn = MultiHeadedAttention(heads, dim)
        self.feed_forward = FeedForward(dim, ffn)
        self.norm1, self.norm2, self.norm3 = esp_norm(dim), esp_norm(dim), esp_norm(dim)

    def forward(self, x: torch.Tensor, tgt_mask: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.self_attn(h, h, h, tgt_mask)
        h = self.norm2(x)
        x = x + self.src_attn(h, memory, memory, memory_mask)
        return x + self.feed_forward(self.norm3(x))


class TransformerDecoder(nn.Module):
    """ESPnet's Transformer decoder as auto_avsr builds it: tokens (B, L) int64, memory
    (B, T, dim), memory_mask (B, 1, T) or None → logits (B, L, vocab) under a causal mask."""

    def __init__(self, vocab: int, dim: int, heads: int, ffn: int, layers: int) -> None:
        super().__init__()
        self.embed = nn.Sequential(nn.Embedding(vocab, dim), PositionalEncoding(dim))
        self.decoders = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(layers))
        self.after_norm = esp_norm(dim)
        self.output_layer = nn.Linear(dim, vocab)

    def forward(self, tokens: torch.Tensor, memory: torch.Tensor,
                memory_mask: torch.Tensor | None = None) -> torch.Tensor:
        length = tokens.shape[1]
        tgt_mask = torch.tril(torch.ones(length, length, dtype=torch.bool))[None]
        x = self.embed(tokens)
        for layer in self.decoders:
            x = layer(x, tgt_mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights everywhere (PyTorch's initialisers, seeded) and random, non-trivial
    normalisation parameters and BatchNorm statistics; evaluation mode."""
    torch.manual_seed(seed)
    for module in model.modules():
        for p in module.parameters(recurse=False):
            if p.dim() < 2:  # biases: PyTorch starts some at zero, which would hide a swap
                nn.init.normal_(p, 0.0, 0.3)
        if isinstance(module, nn.modules.batchnorm._BatchNorm | nn.LayerNorm):
            with torch.no_grad():
                module.weight.uniform_(0.6, 1.4)
                module.bias.normal_(0.0, 0.1)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_(0.0, 0.1)
            module.running_var.uniform_(0.6, 1.4)
        if isinstance(module, nn.PReLU):
            with torch.no_grad():
                module.weight.uniform_(0.05, 0.4)
    return model.eval()


def clips(lengths: list[int], size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 clips padded to the longest: (B, T, size, size) pixels, (B, T) mask."""
    rng = np.random.default_rng(seed)
    video = np.zeros((len(lengths), max(lengths), size, size), np.uint8)
    mask = np.zeros((len(lengths), max(lengths)), bool)
    for i, n in enumerate(lengths):
        video[i, :n] = rng.integers(0, 256, (n, size, size))
        mask[i, :n] = True
    return video, mask


def normalised(pixels: np.ndarray) -> torch.Tensor:
    """What both projects feed their models: (pixel / 255 - mean) / std, float32."""
    return torch.from_numpy(((pixels.astype(np.float32) / 255.0 - MEAN) / STD)
                            .astype(np.float32))


def run_per_clip(model: torch.nn.Module, lengths: list[int], size: int, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, list]:
    """Random padded clips, and the reference's outputs on each clip alone (no padding: what
    the lipjax model must reproduce at the valid frames of the padded batch), as numpy."""
    video, mask = clips(lengths, size, seed)
    with torch.no_grad():
        outs = [model(normalised(video[i:i + 1, :n])) for i, n in enumerate(lengths)]
    to_numpy = lambda y: tuple(z[0].numpy() for z in y) if isinstance(y, tuple) else y[0].numpy()
    return video, mask, [to_numpy(y) for y in outs]


def max_abs_diff(ours: np.ndarray, reference: list[np.ndarray], lengths: list[int]) -> float:
    """Largest |ours - reference| over the valid frames of each clip; padded frames of ours must
    be zero."""
    worst = 0.0
    for i, n in enumerate(lengths):
        worst = max(worst, float(np.abs(np.asarray(ours[i, :n]) - reference[i]).max()))
        assert not np.asarray(ours[i, n:]).any(), "padded frames are not zero"
    return worst
