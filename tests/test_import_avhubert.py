"""AV-HuBERT checkpoints load into lipjax and compute what AV-HuBERT's video-only path computes.

The reference is AV-HuBERT's published model written in PyTorch at tiny sizes under its key
names: ResNet-18 with PReLU (`feature_extractor_video.resnet`), `proj`, the [zero audio | video]
fusion through `layer_norm` and `post_extract_proj`, fairseq's wav2vec 2.0 encoder (weight-normed
`pos_conv` with an even kernel, trimmed as SamePad does; pre-norm layers with GELU;
`encoder.layer_norm`), plus the audio stream and pretraining heads that the import leaves out.
It is saved as fairseq saves (state dict under "model", a config object under "cfg", here a
stand-in for omegaconf's), pretrained and fine-tuned (`encoder.w2v_model.` + a decoder), and
read by the allow-list unpickler, which must also leave a hostile object unexecuted.
Bound as in test_import_auto_avsr.py.
"""

from __future__ import annotations

import math
import os

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the numerical checks need PyTorch (the torch extra)")
from torch import nn  # noqa: E402

from lipjax.io import convert  # noqa: E402
from lipjax.io.torch_file import Opaque, plain, read_checkpoint  # noqa: E402
from tests import torch_reference as ref  # noqa: E402

WIDTH, DIM, HEADS, FFN, LAYERS, POS_KERNEL, POS_GROUPS = 4, 24, 2, 40, 2, 8, 4
LENGTHS, SIZE = [9, 4, 7], 24
TOLERANCE = 1e-4


class MultiheadAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(DIM, DIM))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        split = lambda y: y.view(b, t, HEADS, DIM // HEADS).transpose(1, 2)
        q = split(self.q_proj(x) * (DIM // HEADS) ** -0.5)
        attn = torch.softmax(q @ split(self.k_proj(x)).transpose(-2, -1), dim=-1)
        return self.out_proj((attn @ split(self.v_proj(x))).transpose(1, 2).reshape(b, t, DIM))


class TransformerSentenceEncoderLayer(nn.Module):
    """layer_norm_first=True, as the released AV-HuBERT models."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = MultiheadAttention()
        self.self_attn_layer_norm = nn.LayerNorm(DIM)
        self.fc1, self.fc2 = nn.Linear(DIM, FFN), nn.Linear(FFN, DIM)
        self.final_layer_norm = nn.LayerNorm(DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.final_layer_norm(x))))


class SamePad(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :-1] if POS_KERNEL % 2 == 0 else x


class TransformerEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        conv = nn.Conv1d(DIM, DIM, POS_KERNEL, padding=POS_KERNEL // 2, groups=POS_GROUPS)
        nn.init.normal_(conv.weight, 0.0, math.sqrt(4.0 / (POS_KERNEL * DIM)))
        self.pos_conv = nn.Sequential(nn.utils.weight_norm(conv, name="weight", dim=2),
                                      SamePad(), nn.GELU())
        self.layers = nn.ModuleList(TransformerSentenceEncoderLayer() for _ in range(LAYERS))
        self.layer_norm = nn.LayerNorm(DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_conv(x.transpose(1, 2)).transpose(1, 2)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


class SubModel(nn.Module):
    def __init__(self, resnet: nn.Module | None, in_dim: int) -> None:
        super().__init__()
        self.resnet = resnet
        self.proj = nn.Linear(in_dim, DIM)


class AVHubertModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.feature_extractor_audio = SubModel(None, 104)
        self.feature_extractor_video = SubModel(ref.VideoFrontEnd(WIDTH, "prelu"), 8 * WIDTH)
        self.post_extract_proj = nn.Linear(2 * DIM, DIM)
        self.mask_emb = nn.Parameter(torch.rand(104))
        self.encoder = TransformerEncoder()
        self.layer_norm = nn.LayerNorm(2 * DIM)
        self.final_proj = nn.Linear(DIM, 16)
        self.label_embs_concat = nn.Parameter(torch.rand(20, 16))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """extract_finetune with source={"audio": None, "video": video}."""
        fv = self.feature_extractor_video
        v = fv.proj(fv.resnet(video))
        x = self.layer_norm(torch.cat([torch.zeros_like(v), v], dim=-1))
        return self.encoder(self.post_extract_proj(x))


class ConfigNode:
    """Stands for omegaconf's nodes: a DictConfig keeps its children in `_content`, a value
    node its value in `_val` (the classes are not importable where the checkpoint is read)."""

    def __init__(self, content: dict | None = None, val=None) -> None:
        if content is not None:
            self._content = {k: v if isinstance(v, ConfigNode) else ConfigNode(val=v)
                             for k, v in content.items()}
        else:
            self._val = val


class Hostile:
    """Unpickling this with an ordinary unpickler would run a shell command."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def reference():
    return ref.randomize(AVHubertModel(), seed=0)


@pytest.fixture(scope="module")
def expected(reference):
    return ref.run_per_clip(reference, LENGTHS, SIZE, seed=2)


def fairseq_file(tmp_path, reference, finetuned: bool, marker: str) -> str:
    """Saved as fairseq's checkpoint_utils does: {"cfg", "model", ...} with torch.save."""
    state = reference.state_dict()
    model_cfg = {"encoder_attention_heads": HEADS, "layer_norm_first": True,
                 "activation_fn": "gelu"}
    if finetuned:
        state = {f"encoder.w2v_model.{k}": v for k, v in state.items()}
        state["decoder.embed_tokens.weight"] = torch.zeros(7, DIM)
        model_cfg = {"w2v_args": ConfigNode({"model": ConfigNode(model_cfg)})}
    path = str(tmp_path / ("finetuned.pt" if finetuned else "pretrained.pt"))
    torch.save({"cfg": ConfigNode({"model": ConfigNode(model_cfg)}), "model": state,
                "extra_state": {"hostile": Hostile(marker)}}, path)
    return path


@pytest.mark.parametrize("finetuned", [False, True], ids=["pretrained", "fine-tuned"])
def test_video_encoder_matches_the_reference(reference, expected, tmp_path, finetuned):
    marker = tmp_path / "hostile_code_ran"
    path = fairseq_file(tmp_path, reference, finetuned, str(marker))
    arch, params = convert.import_checkpoint("avhubert", path)
    assert (arch["frontend_width"], arch["frontend_act"], arch["dim"], arch["heads"],
            arch["ffn"], arch["layers"], arch["pos_conv_kernel"], arch["pos_conv_groups"]) == (
        WIDTH, "prelu", DIM, HEADS, FFN, LAYERS, POS_KERNEL, POS_GROUPS)
    video, mask, outs = expected
    model = convert.visual_encoder(arch, params["visual"])
    ours = np.asarray(model(jnp.asarray(video), jnp.asarray(mask)))
    diff = ref.max_abs_diff(ours, outs, LENGTHS)
    print(f"AV-HuBERT ({'fine-tuned' if finetuned else 'pretrained'}): max abs difference "
          f"{diff:.2e}")
    assert diff < TOLERANCE
    assert not marker.exists()


def test_the_unpickler_runs_nothing_from_the_file(reference, tmp_path):
    marker = tmp_path / "hostile_code_ran"
    obj = read_checkpoint(fairseq_file(tmp_path, reference, False, str(marker)))
    hostile = obj["extra_state"]["hostile"]
    assert isinstance(hostile, Opaque) and hostile.origin in ("posix.system", "os.system")
    assert hostile.args == (f"touch {marker}",) and not marker.exists()
    assert plain(obj["cfg"])["model"]["encoder_attention_heads"] == HEADS


def test_newer_weight_norm_names_and_a_wrong_position_kernel(reference, expected, tmp_path):
    """PyTorch's parametrised weight norm writes original0/1 for g/v: read the same; a
    position kernel read with its taps reversed (a layout error) is caught by the bound."""
    state = reference.state_dict()
    renamed = {k.replace("pos_conv.0.weight_g", "pos_conv.0.parametrizations.weight.original0")
               .replace("pos_conv.0.weight_v", "pos_conv.0.parametrizations.weight.original1"): v
               for k, v in state.items()}
    path = str(tmp_path / "renamed.pt")
    torch.save({"model": renamed}, path)
    with pytest.raises(ValueError, match="--heads"):  # no config, and d is not 64·heads
        convert.import_checkpoint("avhubert", path)
    arch, params = convert.import_checkpoint("avhubert", path, heads=HEADS)
    video, mask, outs = expected
    ours = np.asarray(convert.visual_encoder(arch, params["visual"])(jnp.asarray(video),
                                                                     jnp.asarray(mask)))
    assert ref.max_abs_diff(ours, outs, LENGTHS) < TOLERANCE
    flipped = params["visual"]
    pos = flipped["encoder"]["pos_conv"]
    pos["weight_v"], pos["weight_g"] = pos["weight_v"][::-1], pos["weight_g"][::-1]
    ours = np.asarray(convert.visual_encoder(arch, flipped)(jnp.asarray(video),
                                                            jnp.asarray(mask)))
    assert ref.max_abs_diff(ours, outs, LENGTHS) > 100 * TOLERANCE
