"""AV-HuBERT (Shi et al. 2022, github.com/facebookresearch/av_hubert) checkpoints → lipjax.

A fairseq `.pt` file holds the state dict under "model" and the training config under "cfg"
(omegaconf) or "args" (argparse), read with the allow-list unpickler (io/torch_file.py).
Pretrained models keep the encoder at the root; fine-tuned ones (`av_hubert_seq2seq`, `_ctc`)
under `encoder.w2v_model.`, next to their decoder, which is left out. Base: d 768, FFN 3072,
12 layers, 12 heads; Large: 1024, 4096, 24, 16; both ResNet-18 width 64 with PReLU.
The video-only path (models/conv_pos_encoder.py): `feature_extractor_video.{resnet,proj}`,
`layer_norm` and `post_extract_proj` over [zero audio | video], `encoder.pos_conv`, pre-LN
`encoder.layers.{i}` (GELU), `encoder.layer_norm`; the audio stream's weights are not read.
Heads come from the config (shapes do not show them), else d / 64 as in both released sizes.
"""

from __future__ import annotations

import re
from typing import Any

from lipjax.io.mapping import Rule, Tensors, layer_norm, linear, resnet_rules

KIND = "avhubert"
FINETUNED = "encoder.w2v_model."


def root(tensors: Tensors) -> str:
    for prefix in ("", FINETUNED):
        if f"{prefix}feature_extractor_video.resnet.frontend3D.0.weight" in tensors:
            return prefix
    raise ValueError(f"{tensors.source}: not an AV-HuBERT checkpoint (no key "
                     f"'feature_extractor_video.resnet.frontend3D.0.weight', at the root or "
                     f"under '{FINETUNED}')")


def find(cfg: Any, key: str) -> Any:
    """The first value of `key` anywhere in a plain config tree (fine-tuned configs nest the
    pretrained model's under w2v_args), or None."""
    if isinstance(cfg, dict):
        if key in cfg and cfg[key] is not None:
            return cfg[key]
        for value in cfg.values():
            found = find(value, key)
            if found is not None:
                return found
    return None


def _pos_conv(r: str, tensors: Tensors) -> tuple[str, str]:
    """(g key, v key): `weight_g/_v` (nn.utils.weight_norm) or the parametrisation names newer
    PyTorch writes."""
    old = (f"{r}encoder.pos_conv.0.weight_g", f"{r}encoder.pos_conv.0.weight_v")
    new = (f"{r}encoder.pos_conv.0.parametrizations.weight.original0",
           f"{r}encoder.pos_conv.0.parametrizations.weight.original1")
    return new if new[1] in tensors else old


def architecture(tensors: Tensors, cfg: Any = None, heads: int = 0) -> dict[str, Any]:
    """The lipjax model config values of this checkpoint; `cfg` its plain config."""
    r = root(tensors)
    if find(cfg, "layer_norm_first") is False:
        raise ValueError(f"{tensors.source}: the config has layer_norm_first=False (post-norm "
                         "layers); lipjax's AV-HuBERT encoder is the pre-norm one of the "
                         "released models")
    act = find(cfg, "activation_fn")
    if act not in (None, "gelu"):
        raise ValueError(f"{tensors.source}: activation_fn={act!r}; expected 'gelu'")
    _, v = _pos_conv(r, tensors)
    for key in (f"{r}post_extract_proj.weight", v, f"{r}encoder.layers.0.fc1.weight"):
        if key not in tensors:
            raise KeyError(f"{tensors.source}: key {key!r} is missing (an AV-HuBERT encoder "
                           "with modality_fuse=concat has it)")
    dim, fused = tensors.shape(f"{r}post_extract_proj.weight")
    if fused != 2 * dim:
        raise ValueError(f"{tensors.source}: post_extract_proj.weight has shape "
                         f"{(dim, fused)}; expected ({dim}, {2 * dim}) (modality_fuse=concat)")
    k_out, k_in, kernel = tensors.shape(v)
    heads = heads or int(find(cfg, "encoder_attention_heads") or 0)
    if not heads and dim % 64:
        raise ValueError(f"{tensors.source}: the config does not give the attention heads and "
                         f"d={dim} is not a multiple of 64 (the released head size): pass "
                         f"--heads")
    heads = heads or dim // 64
    stem = f"{r}feature_extractor_video.resnet.frontend3D"
    return {
        "frontend_width": tensors.shape(f"{stem}.0.weight")[0], "norm": "batch",
        "frontend_act": "prelu" if f"{stem}.2.weight" in tensors else "relu",
        "encoder": "avhubert", "dim": dim, "heads": heads,
        "layers": tensors.count(f"{r}encoder.layers.{{i}}.fc1.weight"),
        "ffn": tensors.shape(f"{r}encoder.layers.0.fc1.weight")[0],
        "ffn_act": "gelu", "norm_eps": 1e-5,
        "pos_conv_kernel": kernel, "pos_conv_groups": k_out // k_in,
    }


def rules(tensors: Tensors, arch: dict[str, Any]) -> list[Rule]:
    r = root(tensors)
    g, v = _pos_conv(r, tensors)
    e, blk = "encoder/layers/blocks", f"{r}encoder.layers.{{i}}."
    out = [*resnet_rules(f"{r}feature_extractor_video.resnet.", arch["frontend_act"]),
           *linear("encoder/fusion/proj", f"{r}feature_extractor_video.proj"),
           *layer_norm("encoder/fusion/layer_norm", f"{r}layer_norm"),
           *linear("encoder/fusion/post_extract_proj", f"{r}post_extract_proj"),
           Rule("encoder/pos_conv/weight_g", g, "taps"),
           Rule("encoder/pos_conv/weight_v", v, "conv1d"),
           Rule("encoder/pos_conv/bias", f"{r}encoder.pos_conv.0.bias"),
           *layer_norm("encoder/final_norm", f"{r}encoder.layer_norm"),
           *layer_norm(f"{e}/attn_norm", f"{blk}self_attn_layer_norm"),
           *layer_norm(f"{e}/ff_norm", f"{blk}final_layer_norm"),
           *linear(f"{e}/ff/up", f"{blk}fc1"), *linear(f"{e}/ff/down", f"{blk}fc2")]
    for ours, theirs in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out")):
        out += linear(f"{e}/attn/{ours}", f"{blk}self_attn.{theirs}_proj")
    return out


def ignored(tensors: Tensors, with_ctc: bool = False) -> list[str]:
    """Left out: the audio stream, pretraining heads (mask_emb, label embeddings, final_proj),
    BatchNorm counters, and everything outside the encoder of a fine-tuned file (its decoder)."""
    r = re.escape(root(tensors))
    outside = f"^(?!{r})" if r else "^$"
    return [r"num_batches_tracked$", outside, f"^{r}feature_extractor_audio\\.",
            f"^{r}(mask_emb|label_embs_concat)$", f"^{r}final_proj\\.", f"^{r}target_glu\\."]
