"""auto_avsr checkpoints load into lipjax and compute what auto_avsr computes.

The reference below is auto_avsr's published VSR model written in PyTorch (ESPnet Conformer:
relative-position attention with pos_bias_u/v and linear_pos, macaron FFN halves with ReLU,
conv module with BatchNorm, LayerNorm epsilon 1e-12, after_norm; the ResNet-18 front end with
swish) at tiny sizes, under the published key names. Its random weights are saved with
`torch.save(state_dict)` in both key layouts, imported, and the lipjax front end + encoder (and
CTC head) run on a padded batch of clips of several lengths must agree with the reference run
on each clip alone. Float32 round-off through these few layers stays orders of magnitude below
the 1e-4 bound; a wrong axis order, activation or missing norm moves outputs by O(0.1) (the
negative controls show the bound can fail).

The attention decoder (ESPnet's pre-norm Transformer decoder, tests/torch_reference.py) is
checked the same way: imported with `with_decoder=True`, its teacher-forced logits on random
encoder states of several lengths, padded and masked, and token prefixes of several lengths
must agree with the reference run on each example alone, and its incremental `step()` with its
full pass.
"""

from __future__ import annotations

import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch", reason="the numerical checks need PyTorch (the torch extra)")
from torch import nn  # noqa: E402

from lipjax.io import convert  # noqa: E402
from lipjax.tasks.common import restore_params  # noqa: E402
from tests import torch_reference as ref  # noqa: E402

WIDTH, DIM, HEADS, FFN, KERNEL, LAYERS, VOCAB = 4, 24, 2, 40, 5, 2, 11
DECODER_LAYERS, TOKEN_LENGTHS = 2, [6, 1, 4]
LENGTHS, SIZE = [9, 4, 7], 24
TOLERANCE = 1e-4
esp_norm = ref.esp_norm


class RelPositionMultiHeadedAttention(ref.MultiHeadedAttention):
    """ESPnet's plain attention's projections plus the relative-position ones."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__(heads, dim)
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


PositionwiseFeedForward = ref.FeedForward


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
    """auto_avsr's VSR model (current layout); `forward` runs the encoder and CTC head, the
    decoder is compared on its own (`decoder_inputs`)."""

    def __init__(self) -> None:
        super().__init__()
        self.frontend = ref.VideoFrontEnd(WIDTH, "swish")
        self.proj_encoder = nn.Linear(8 * WIDTH, DIM)
        self.encoder = ConformerEncoder()
        self.decoder = ref.TransformerDecoder(VOCAB, DIM, HEADS, FFN, DECODER_LAYERS)
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


def decoder_inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random encoder states (B, T, D) padded to the longest of LENGTHS (random values in the
    padding too: only the mask may hide them), their (B, T) mask, and random token ids
    (B, max TOKEN_LENGTHS)."""
    rng = np.random.default_rng(seed)
    memory = rng.normal(size=(len(LENGTHS), max(LENGTHS), DIM)).astype(np.float32)
    mask = np.arange(max(LENGTHS))[None] < np.asarray(LENGTHS)[:, None]
    return memory, mask, rng.integers(0, VOCAB, (len(LENGTHS), max(TOKEN_LENGTHS)))


def reference_decoder_logits(reference, memory, tokens) -> list[np.ndarray]:
    """The reference decoder on each example alone: its own T frames and L tokens."""
    with torch.no_grad():
        return [reference.decoder(torch.from_numpy(tokens[i:i + 1, :n]).long(),
                                  torch.from_numpy(memory[i:i + 1, :t]))[0].numpy()
                for i, (t, n) in enumerate(zip(LENGTHS, TOKEN_LENGTHS, strict=True))]


def decoder_diff(ours: np.ndarray, expected: list[np.ndarray]) -> float:
    return max(float(np.abs(ours[i, :n] - expected[i]).max())
               for i, n in enumerate(TOKEN_LENGTHS))


@pytest.fixture(scope="module")
def decoder_case(reference):
    memory, mask, tokens = decoder_inputs(seed=2)
    return memory, mask, tokens, reference_decoder_logits(reference, memory, tokens)


@pytest.mark.parametrize("layout", ["current", "pre-2025"])
def test_decoder_matches_the_reference(reference, decoder_case, tmp_path, layout):
    state = reference.state_dict()
    path = save(tmp_path, state if layout == "current" else legacy(state))
    arch, params = convert.import_checkpoint("auto_avsr", path, with_ctc=True, with_decoder=True)
    assert arch["decoder"] == {"vocab": VOCAB, "dim": DIM, "layers": DECODER_LAYERS,
                               "heads": HEADS, "ffn": FFN, "ffn_act": "relu", "norm_eps": 1e-12,
                               "blank": 0, "sos": VOCAB - 1, "eos": VOCAB - 1}
    memory, mask, tokens, expected = decoder_case
    decoder = convert.attention_decoder(arch["decoder"], params["decoder"])
    memory, mask, tokens = jnp.asarray(memory), jnp.asarray(mask), jnp.asarray(tokens)

    @nnx.jit
    def run(d):
        full = d(tokens, memory, mask)
        cache = d.init_cache(memory, tokens.shape[1])
        steps = []
        for i in range(tokens.shape[1]):
            logits, cache = d.step(cache, tokens[:, i], jnp.int32(i), mask)
            steps.append(logits)
        return full, jnp.stack(steps, axis=1)

    full, steps = map(np.asarray, run(decoder))
    diff, step_diff = decoder_diff(full, expected), float(np.abs(steps - full).max())
    print(f"auto_avsr decoder ({layout}): max abs difference {diff:.2e} (reference), "
          f"{step_diff:.2e} (step vs full)")
    assert diff < TOLERANCE and step_diff < TOLERANCE

    swish = convert.attention_decoder({**arch["decoder"], "ffn_act": "swish"}, params["decoder"])
    assert decoder_diff(np.asarray(swish(tokens, memory, mask)), expected) > 100 * TOLERANCE


def test_decoder_errors_name_the_key(reference, tmp_path):
    state = reference.state_dict()
    key = "decoder.decoders.1.src_attn.linear_k.weight"
    wrong = {**state, key: torch.zeros(24, 23)}
    with pytest.raises(ValueError, match=rf"{key}.*shape \(24, 23\), expected \(24, 24\)"):
        convert.import_checkpoint("auto_avsr", save(tmp_path, wrong, "wrong.pth"),
                                  with_decoder=True)
    key = "decoder.decoders.0.norm3.bias"
    missing = {k: v for k, v in state.items() if k != key}
    with pytest.raises(KeyError, match=rf"{key}.*missing.*\(24,\)"):
        convert.import_checkpoint("auto_avsr", save(tmp_path, missing, "missing.pth"),
                                  with_decoder=True)
    extra = {**state, "decoder.decoders.0.concat_linear1.weight": torch.zeros(24, 48)}
    path = save(tmp_path, extra, "extra.pth")
    with pytest.raises(ValueError, match=r"unexpected keys.*concat_linear1\.weight \(24, 48\)"):
        convert.import_checkpoint("auto_avsr", path, with_decoder=True)
    convert.import_checkpoint("auto_avsr", path)  # not asked for: the decoder is left out


def test_convert_writes_the_decoder_and_its_ids(reference, tmp_path):
    path = save(tmp_path, reference.state_dict())
    out = str(tmp_path / "converted")
    assert convert.main(["auto_avsr", path, out, "--with_decoder"]) == 0
    with open(f"{out}/config.json") as f:
        written = json.load(f)
    arch, params = convert.import_checkpoint("auto_avsr", path, with_decoder=True)
    assert written["decoder"] == arch["decoder"] and "decoder" not in written["model"]
    restored = restore_params(out)
    assert sorted(restored) == ["decoder", "visual"]
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), restored["decoder"],
                        params["decoder"])
    assert all(jax.tree.leaves(same))
