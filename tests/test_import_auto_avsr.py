"""auto_avsr checkpoints load into lipjax and compute what auto_avsr computes.

The reference below is auto_avsr's published VSR model written in PyTorch (ESPnet Conformer:
relative-position attention with pos_bias_u/v and linear_pos, macaron FFN halves with ReLU,
conv module with BatchNorm, LayerNorm epsilon 1e-12, after_norm; the ResNet-18 front end with
swish) at tiny sizes, under the published key names. Its random weights are saved with
`torch.save(state_dict)` in both key layouts, imported, and the lipjax front end + encoder (and
CTC head) run on a padded batch of clips of several lengths must agree with the reference run
on each clip alone. Float32 round-off through these few layers stays orders of magnitude below
the 1e-4 bound; a wrong axis order, activation or missing norm moves outputs by O(0.1) (the
negative control shows the bound can fail).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the numerical checks need PyTorch (the torch extra)")
from torch import nn  # noqa: E402

from lipjax.io import convert  # noqa: E402
from tests import torch_reference as ref  # noqa: E402

WIDTH, DIM, HEADS, FFN, KERNEL, LAYERS, VOCAB = 4, 24, 2, 40, 5, 2, 11
LENGTHS, SIZE = [9, 4, 7], 24
TOLERANCE = 1e-4


def esp_norm(dim: int) -> nn.LayerNorm:
    return nn.LayerNorm(dim, eps=1e-12)


class RelPositionMultiHeadedAttention(nn.Module):
    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.h, self.d_k = heads, dim // heads
        self.linear_q, self.linear_k = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_v, self.linear_out = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.linear_pos = nn.Linear(dim, dim, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(heads, self.d_k))
        self.pos_bias_v = nn.Parameter(torch.empty(heads, self.d_k))
        nn.init.xavier_uniform_(self.pos_bias_u)
        nn.init.xavier_uniform_(self.pos_bias_v)

    @staticmethod
    def rel_shift(x: torch.Tensor) -> torch.Tensor:
        b, h, t, p = x.shape
        padded = torch.cat([x.new_zeros(b, h, t, 1), x], dim=-1).view(b, h, p + 1, t)
        return padded[:, :, 1:].reshape(b, h, t, p)[:, :, :, : p // 2 + 1]

    def forward(self, x: torch.Tensor, pos_emb: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        split = lambda y: y.view(b, -1, self.h, self.d_k)
        q, k, v = split(self.linear_q(x)), split(self.linear_k(x)), split(self.linear_v(x))
        p = split(self.linear_pos(pos_emb)).transpose(1, 2)
        keys = k.transpose(1, 2).transpose(-2, -1)
        ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), keys)
        bd = self.rel_shift(torch.matmul((q + self.pos_bias_v).transpose(1, 2),
                                         p.transpose(-2, -1)))
        attn = torch.softmax((ac + bd) / math.sqrt(self.d_k), dim=-1)
        out = torch.matmul(attn, v.transpose(1, 2)).transpose(1, 2).reshape(b, t, -1)
        return self.linear_out(out)


def rel_positions(t: int, dim: int) -> torch.Tensor:
    """ESPnet's RelPositionalEncoding codes for positions t-1 ... -(t-1): (1, 2t-1, dim)."""
    pos = torch.arange(t - 1, -t, -1, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * -(math.log(10000.0) / dim))
    pe = torch.zeros(2 * t - 1, dim)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div), torch.cos(pos * div)
    return pe[None]


class PositionwiseFeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w_1, self.w_2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(torch.relu(self.w_1(x)))


class ConvolutionModule(nn.Module):
    def __init__(self, dim: int, kernel: int) -> None:
        super().__init__()
        self.pointwise_cov1 = nn.Conv1d(dim, 2 * dim, 1)
        self.depthwise_conv = nn.Conv1d(dim, dim, kernel, padding=(kernel - 1) // 2, groups=dim)
        self.norm = nn.BatchNorm1d(dim)
        self.pointwise_cov2 = nn.Conv1d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.glu(self.pointwise_cov1(x.transpose(1, 2)), dim=1)
        x = self.norm(self.depthwise_conv(x))
        return self.pointwise_cov2(x * torch.sigmoid(x)).transpose(1, 2)


class EncoderLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self_attn = RelPositionMultiHeadedAttention(HEADS, DIM)
        self.feed_forward = PositionwiseFeedForward(DIM, FFN)
        self.feed_forward_macaron = PositionwiseFeedForward(DIM, FFN)
        self.conv_module = ConvolutionModule(DIM, KERNEL)
        for name in ("norm_ff", "norm_mha", "norm_ff_macaron", "norm_conv", "norm_final"):
            setattr(self, name, esp_norm(DIM))

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.feed_forward_macaron(self.norm_ff_macaron(x))
        x = x + self.self_attn(self.norm_mha(x), pos)
        x = x + self.conv_module(self.norm_conv(x))
        x = x + 0.5 * self.feed_forward(self.norm_ff(x))
        return self.norm_final(x)


class ConformerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoders = nn.ModuleList(EncoderLayer() for _ in range(LAYERS))
        self.after_norm = esp_norm(DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pos = rel_positions(x.shape[1], DIM)
        x = x * math.sqrt(DIM)
        for layer in self.encoders:
            x = layer(x, pos)
        return self.after_norm(x)


class CTC(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(DIM, VOCAB)


class E2E(nn.Module):
    """auto_avsr's VSR model (current layout); the decoder is not part of the comparison."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = ref.VideoFrontEnd(WIDTH, "swish")
        self.proj_encoder = nn.Linear(8 * WIDTH, DIM)
        self.encoder = ConformerEncoder()
        self.ctc = CTC()

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.encoder(self.proj_encoder(self.frontend(video)))
        return states, self.ctc.ctc_lo(states)


def legacy(state: dict) -> dict:
    """The pre-2025 layout: front end inside the encoder, projection as encoder.embed.0."""
    out = {}
    for key, value in state.items():
        key = "encoder." + key if key.startswith("frontend.") else key
        out[key.replace("proj_encoder.", "encoder.embed.0.")] = value
    return out


@pytest.fixture(scope="module")
def reference():
    return ref.randomize(E2E(), seed=0)


@pytest.fixture(scope="module")
def expected(reference):
    video, mask, outs = ref.run_per_clip(reference, LENGTHS, SIZE, seed=1)
    return video, mask, [s for s, _ in outs], [c for _, c in outs]


def save(tmp_path, state: dict, name: str = "model.pth") -> str:
    path = str(tmp_path / name)
    torch.save(state, path)
    return path


@pytest.mark.parametrize("layout", ["current", "pre-2025"])
def test_encoder_and_ctc_match_the_reference(reference, expected, tmp_path, layout):
    state = reference.state_dict()
    path = save(tmp_path, state if layout == "current" else legacy(state))
    arch, params = convert.import_checkpoint("auto_avsr", path, with_ctc=True)
    assert (arch["frontend_width"], arch["dim"], arch["heads"], arch["ffn"], arch["kernel"],
            arch["layers"], arch["final_norm"]) == (WIDTH, DIM, HEADS, FFN, KERNEL, LAYERS, True)
    video, mask, states, logits = expected
    model = convert.visual_encoder(arch, params["visual"])
    ours = np.asarray(model(jnp.asarray(video), jnp.asarray(mask)))
    ctc = ours @ params["ctc"]["kernel"] + params["ctc"]["bias"]
    state_diff = ref.max_abs_diff(ours, states, LENGTHS)
    ctc_diff = max(float(np.abs(ctc[i, :n] - logits[i]).max()) for i, n in enumerate(LENGTHS))
    print(f"auto_avsr ({layout}): max abs difference encoder {state_diff:.2e}, CTC {ctc_diff:.2e}")
    assert state_diff < TOLERANCE and ctc_diff < TOLERANCE


def test_a_wrong_activation_is_caught(reference, expected, tmp_path):
    """The negative control: ReLU read as swish in the FFN moves outputs far past the bound."""
    arch, params = convert.import_checkpoint("auto_avsr", save(tmp_path, reference.state_dict()))
    video, mask, states, _ = expected
    model = convert.visual_encoder({**arch, "ffn_act": "swish"}, params["visual"])
    ours = np.asarray(model(jnp.asarray(video), jnp.asarray(mask)))
    assert ref.max_abs_diff(ours, states, LENGTHS) > 100 * TOLERANCE


def test_errors_name_the_key_and_both_shapes(reference, tmp_path):
    state = reference.state_dict()
    key = "encoder.encoders.1.conv_module.pointwise_cov2.weight"
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(KeyError, match=rf"{key}.*missing.*\(24, 24, 1\)"):
        convert.import_checkpoint("auto_avsr", save(tmp_path, missing, "missing.pth"))
    wrong = {**state, key: torch.zeros(24, 23, 1)}
    with pytest.raises(ValueError, match=rf"{key}.*shape \(24, 23, 1\), expected \(24, 24, 1\)"):
        convert.import_checkpoint("auto_avsr", save(tmp_path, wrong, "wrong.pth"))
    extra = {**state, "encoder.encoders.0.concat_linear.weight": torch.zeros(24, 48)}
    with pytest.raises(ValueError, match=r"unexpected keys.*concat_linear\.weight \(24, 48\)"):
        convert.import_checkpoint("auto_avsr", save(tmp_path, extra, "extra.pth"))
