"""auto_avsr (Ma et al. 2023, github.com/mpc001/auto_avsr) VSR checkpoints → lipjax.

A `.pth` file is a plain state dict. Two key layouts:
- current (2025 refactor): `frontend.frontend3D.*`, `frontend.trunk.*`, `proj_encoder.*`,
  `encoder.encoders.{i}.*`, `encoder.after_norm.*`;
- earlier: the front end inside the encoder, `encoder.frontend.*`, and the projection as
  `encoder.embed.0.*`.
Either may sit under a `model.` prefix (Lightning checkpoints). The architecture is read from the
shapes: ResNet width, d_model, heads (`pos_bias_u` is (heads, d_k)), FFN, kernel, layers.
What the published code computes, and the config values that reproduce it: swish front end,
ESPnet Conformer blocks (macaron FFN halves with ReLU, relative-position attention, conv module
with BatchNorm), LayerNorm epsilon 1e-12, `after_norm` at the end.
The CTC head (`ctc.ctc_lo`, vocabulary of auto_avsr's SentencePiece model) comes along on
request, and so does the attention decoder (`decoder.*`, ESPnet's Transformer decoder): pre-norm
blocks `norm1` → self-attention, `norm2` → `src_attn` over the encoder states, `norm3` → ReLU
feed-forward, then `after_norm` and `output_layer`; embedding ×√dim plus interleaved sin/cos
positions. That is lipjax's models/decoder.TransformerDecoder with ffn_act="relu" and
norm_eps=1e-12. Its heads are not in its shapes: auto_avsr gives decoder and encoder the same
count, so the encoder's is used.

Token ids: the imported decoder and CTC head keep auto_avsr's, not lipjax's (schema.py: PAD 0,
UNK 1, BOS 2, EOS 3). auto_avsr's vocabulary is `<blank>` 0, then its SentencePiece units file
(`<unk>` 1, pieces from 2), then one `<sos/eos>` token at vocab-1 that both starts and ends a
sentence. Permuting rows cannot make that fit lipjax's convention (one auto_avsr token would
have to be both BOS 2 and EOS 3, and ids 2 and 3 are real pieces in auto_avsr's model), so the
ids stay as published, and `decoder_architecture` records blank/sos/eos next to the sizes
(convert.py writes them into config.json's "decoder"). Text in and out goes through auto_avsr's
own SentencePiece model and units file, not a lipjax tokenizer.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from lipjax.io.mapping import Rule, Tensors, batch_norm, layer_norm, linear, resnet_rules

KIND = "auto_avsr"


def layout(tensors: Tensors) -> tuple[str, str, str, str]:
    """(root, front-end prefix, projection key, encoder prefix) of the file's key layout."""
    stems = [k for k in tensors.arrays if k.endswith("frontend.frontend3D.0.weight")]
    if len(stems) != 1:
        raise ValueError(f"{tensors.source}: not an auto_avsr video checkpoint (expected one "
                         f"key ending in 'frontend.frontend3D.0.weight', found {stems})")
    head = stems[0][: -len("frontend.frontend3D.0.weight")]
    if head.endswith("encoder."):  # before the 2025 refactor
        root = head[: -len("encoder.")]
        return root, f"{head}frontend.", f"{root}encoder.embed.0", f"{root}encoder."
    return head, f"{head}frontend.", f"{head}proj_encoder", f"{head}encoder."


def architecture(tensors: Tensors) -> dict[str, Any]:
    """The lipjax model config values (config.model) of this checkpoint."""
    _, fe, proj, enc = layout(tensors)
    layer = f"{enc}encoders.{{i}}."
    first = layer.format(i=0)
    for key in (f"{proj}.weight", f"{first}self_attn.pos_bias_u",
                f"{first}feed_forward_macaron.w_1.weight",
                f"{first}conv_module.depthwise_conv.weight"):
        if key not in tensors:
            raise KeyError(f"{tensors.source}: key {key!r} is missing: an auto_avsr Conformer "
                           "checkpoint (relative-position attention, macaron FFN, conv "
                           "module) has it")
    width = tensors.shape(f"{fe}frontend3D.0.weight")[0]
    dim, in_dim = tensors.shape(f"{proj}.weight")
    if in_dim != 8 * width or dim == in_dim:
        raise ValueError(f"{tensors.source}: {proj}.weight has shape {(dim, in_dim)}; lipjax "
                         f"expects (d_model, {8 * width}) with d_model != {8 * width}")
    return {
        "frontend_width": width, "norm": "batch", "frontend_act":
            "prelu" if f"{fe}trunk.layer1.0.relu1.weight" in tensors else "swish",
        "encoder": "conformer", "dim": dim,
        "heads": tensors.shape(f"{first}self_attn.pos_bias_u")[0],
        "layers": tensors.count(f"{layer}norm_mha.weight"),
        "ffn": tensors.shape(f"{first}feed_forward.w_1.weight")[0],
        "kernel": tensors.shape(f"{first}conv_module.depthwise_conv.weight")[-1],
        "ffn_act": "relu", "final_norm": f"{enc}after_norm.weight" in tensors,
        "norm_eps": 1e-12,
    }


def rules(tensors: Tensors, arch: dict[str, Any]) -> list[Rule]:
    _, fe, proj, enc = layout(tensors)
    e, blk = "encoder/layers/blocks", f"{enc}encoders.{{i}}."
    out = [*resnet_rules(fe, arch["frontend_act"]), *linear("encoder/embed", proj),
           *layer_norm("encoder/final_norm", f"{enc}after_norm")]
    for ours, theirs in (("ff1", "feed_forward_macaron"), ("ff2", "feed_forward")):
        out += [*linear(f"{e}/{ours}/up", f"{blk}{theirs}.w_1"),
                *linear(f"{e}/{ours}/down", f"{blk}{theirs}.w_2")]
    for ours, theirs in (("ff1_norm", "norm_ff_macaron"), ("attn_norm", "norm_mha"),
                         ("conv_norm", "norm_conv"), ("ff2_norm", "norm_ff"),
                         ("out_norm", "norm_final")):
        out += layer_norm(f"{e}/{ours}", f"{blk}{theirs}")
    for ours, theirs in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out")):
        out += linear(f"{e}/attn/{ours}", f"{blk}self_attn.linear_{theirs}")
    out += [Rule(f"{e}/attn/pos/kernel", f"{blk}self_attn.linear_pos.weight", "linear"),
            Rule(f"{e}/attn/pos_bias_u", f"{blk}self_attn.pos_bias_u"),
            Rule(f"{e}/attn/pos_bias_v", f"{blk}self_attn.pos_bias_v"),
            *linear(f"{e}/conv/pointwise1", f"{blk}conv_module.pointwise_cov1", "conv1x1"),
            *linear(f"{e}/conv/pointwise2", f"{blk}conv_module.pointwise_cov2", "conv1x1"),
            *linear(f"{e}/conv/depthwise", f"{blk}conv_module.depthwise_conv", "conv1d"),
            *batch_norm(f"{e}/conv/norm", f"{blk}conv_module.norm")]
    return out


def ignored(tensors: Tensors, with_ctc: bool, with_decoder: bool = False) -> list[str]:
    """Keys left out on purpose: the decoder and the CTC head unless asked for, BatchNorm
    counters."""
    root = re.escape(layout(tensors)[0])
    out = [r"num_batches_tracked$"]
    out += [] if with_decoder else [f"^{root}decoder\\."]
    return out if with_ctc else [*out, f"^{root}ctc\\."]


def ctc_head(tensors: Tensors) -> dict[str, np.ndarray]:
    """auto_avsr's CTC projection as an nnx.Linear's {kernel (D, V), bias (V,)}."""
    key = f"{layout(tensors)[0]}ctc.ctc_lo"
    shape = tensors.shape(f"{key}.weight") if f"{key}.weight" in tensors else None
    if shape is None:
        raise KeyError(f"{tensors.source}: key {key + '.weight'!r} is missing (asked for the "
                       "CTC head)")
    return {"kernel": tensors.take(f"{key}.weight", shape, "ctc/kernel").T.copy(),
            "bias": tensors.take(f"{key}.bias", (shape[0],), "ctc/bias")}


def _decoder_prefix(tensors: Tensors) -> str:
    return f"{layout(tensors)[0]}decoder."


def decoder_architecture(tensors: Tensors, heads: int) -> dict[str, Any]:
    """The TransformerDecoder's constructor values (`heads`: the encoder's, see the module
    docstring) and auto_avsr's token ids: {vocab, dim, layers, heads, ffn, ffn_act, norm_eps,
    blank, sos, eos}."""
    dec = _decoder_prefix(tensors)
    for key in (f"{dec}embed.0.weight", f"{dec}decoders.0.self_attn.linear_q.weight",
                f"{dec}decoders.0.src_attn.linear_q.weight",
                f"{dec}decoders.0.feed_forward.w_1.weight"):
        if key not in tensors:
            raise KeyError(f"{tensors.source}: key {key!r} is missing (asked for the attention "
                           "decoder: auto_avsr's ESPnet Transformer decoder has it)")
    vocab, dim = tensors.shape(f"{dec}embed.0.weight")
    layers = tensors.count(f"{dec}decoders.{{i}}.self_attn.linear_q.weight")
    ffn = tensors.shape(f"{dec}decoders.0.feed_forward.w_1.weight")[0]
    return {"vocab": vocab, "dim": dim, "layers": layers, "heads": heads, "ffn": ffn,
            "ffn_act": "relu", "norm_eps": 1e-12, "blank": 0, "sos": vocab - 1, "eos": vocab - 1}


def decoder_rules(tensors: Tensors) -> list[Rule]:
    """models/decoder.TransformerDecoder ← `decoder.*` (ESPnet's pre-norm Transformer decoder;
    `output_norm` is ESPnet's older name of `after_norm`, which its loader renames too)."""
    dec = _decoder_prefix(tensors)
    blk, b = f"{dec}decoders.{{i}}.", "layers/blocks"
    final = f"{dec}output_norm" if f"{dec}output_norm.weight" in tensors else f"{dec}after_norm"
    out = [Rule("embed/embedding", f"{dec}embed.0.weight"), *layer_norm("final_norm", final),
           *linear("logits", f"{dec}output_layer"),
           *linear(f"{b}/ff/up", f"{blk}feed_forward.w_1"),
           *linear(f"{b}/ff/down", f"{blk}feed_forward.w_2")]
    for ours, theirs in (("self_norm", "norm1"), ("cross_norm", "norm2"), ("ff_norm", "norm3")):
        out += layer_norm(f"{b}/{ours}", f"{blk}{theirs}")
    for ours, theirs in (("self_attn", "self_attn"), ("cross_attn", "src_attn")):
        for proj, name in (("query", "q"), ("key", "k"), ("value", "v"), ("out", "out")):
            out += linear(f"{b}/{ours}/{proj}", f"{blk}{theirs}.linear_{name}")
    return out


def outside_decoder(tensors: Tensors) -> list[str]:
    """`ignore` patterns for filling the decoder alone: every key not under `decoder.`."""
    return [f"^(?!{re.escape(_decoder_prefix(tensors))})"]
