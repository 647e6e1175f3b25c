"""Convert a pretrained checkpoint once; train without PyTorch afterwards.

    python -m lipjax.io.convert auto_avsr vsr_trlrs3vox2_base.pth out/pretrained/auto_avsr
    python -m lipjax.io.convert auto_avsr vsr_trlrs3vox2_base.pth OUT --with_ctc --with_decoder
    python -m lipjax.io.convert avhubert base_vox_iter5.pt out/pretrained/avhubert_base

OUT receives `checkpoints/0/state` (Orbax; {"model": {"visual": frontend + encoder, "ctc": the
CTC head with --with_ctc, "decoder": the attention decoder with --with_decoder}}, the layout
every lipjax stage reads, lipjax/tasks/common.py) and `config.json`, whose "model" values build
the lipjax model that fits it and whose "decoder" (with --with_decoder) holds the
TransformerDecoder's sizes and auto_avsr's token ids (`attention_decoder` builds it; the ids
are auto_avsr's, io/auto_avsr.py). Stage 1 starts from it with
`configs/units_pretrain.py:base,init_from=OUT` (fresh unit and language-ID heads).
Reading the file needs neither PyTorch nor fairseq, and runs nothing stored in it
(io/torch_file.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import ml_collections
from flax import nnx

from lipjax.io import auto_avsr, avhubert
from lipjax.io.mapping import Tensors, fill
from lipjax.io.torch_file import plain, read_checkpoint, state_dict
from lipjax.models import factory
from lipjax.models.decoder import TransformerDecoder
from lipjax.models.lipreader import VisualEncoder
from lipjax.tasks.common import WEIGHTS

FAMILIES = {auto_avsr.KIND: auto_avsr, avhubert.KIND: avhubert}


def model_config(arch: dict[str, Any]) -> ml_collections.ConfigDict:
    """A config whose `model` block builds the imported architecture (float32); an imported
    decoder's values (arch["decoder"]) are not model keys and stay out."""
    model = {k: v for k, v in arch.items() if k != "decoder"}
    return ml_collections.ConfigDict({"model": factory.model_config("base", **model),
                                      "train": {"dtype": "float32"}})


def import_checkpoint(kind: str, path: str, *, heads: int = 0, with_ctc: bool = False,
                      with_decoder: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.model values, lipjax parameters {"visual": ..., ["ctc": ...], ["decoder": ...]})
    of a checkpoint; with_decoder adds arch["decoder"] (auto_avsr.decoder_architecture)."""
    if kind not in FAMILIES:
        raise ValueError(f"checkpoint kind {kind!r}: expected one of {sorted(FAMILIES)}")
    family = FAMILIES[kind]
    obj = read_checkpoint(path)
    tensors = Tensors(state_dict(obj, path), path)
    if kind == avhubert.KIND:
        if with_ctc or with_decoder:
            raise ValueError("--with_ctc, --with_decoder: only auto_avsr checkpoints have a CTC "
                             "head and an attention decoder to import")
        config_obj = obj.get("cfg", obj.get("args")) if isinstance(obj, dict) else None
        arch = avhubert.architecture(tensors, plain(config_obj), heads)
    else:
        arch = auto_avsr.architecture(tensors)
        arch["heads"] = heads or arch["heads"]
    params: dict[str, Any] = {}
    if with_ctc:
        params["ctc"] = auto_avsr.ctc_head(tensors)
    if with_decoder:  # before the encoder, whose fill then finds every decoder key read
        arch["decoder"] = auto_avsr.decoder_architecture(tensors, arch["heads"])
        abstract = nnx.eval_shape(lambda: _decoder(arch["decoder"]))
        params["decoder"] = fill(nnx.state(abstract, WEIGHTS).to_pure_dict(),
                                 auto_avsr.decoder_rules(tensors), tensors,
                                 auto_avsr.outside_decoder(tensors))
    abstract = nnx.eval_shape(lambda: factory.visual_encoder(model_config(arch), nnx.Rngs(0)))
    target = nnx.state(abstract, WEIGHTS).to_pure_dict()
    ignore = (auto_avsr.ignored(tensors, with_ctc, with_decoder) if kind == auto_avsr.KIND
              else family.ignored(tensors, with_ctc))
    params["visual"] = fill(target, family.rules(tensors, arch), tensors, ignore)
    return arch, params


def _decoder(config: dict[str, Any]) -> TransformerDecoder:
    return TransformerDecoder(config["vocab"], config["dim"], config["layers"], config["heads"],
                              config["ffn"], ffn_act=config["ffn_act"],
                              norm_eps=config["norm_eps"], rngs=nnx.Rngs(0))


def attention_decoder(config: dict[str, Any], weights: dict[str, Any]) -> TransformerDecoder:
    """The imported attention decoder (config: arch["decoder"] or config.json's "decoder";
    weights: params["decoder"]), in evaluation mode; its token ids are auto_avsr's."""
    return _with_weights(_decoder(config), weights)


def visual_encoder(arch: dict[str, Any], visual: dict[str, Any]) -> VisualEncoder:
    """The lipjax front end + encoder with imported weights, in evaluation mode."""
    return _with_weights(factory.visual_encoder(model_config(arch), nnx.Rngs(0)), visual)


def _with_weights(model: nnx.Module, weights: dict[str, Any]) -> Any:
    """`model` with its weights replaced by `weights` (a pure dict), in evaluation mode."""
    state = nnx.state(model, WEIGHTS)
    nnx.replace_by_pure_dict(state, weights)
    nnx.update(model, state)
    model.eval()
    return model


def save(out: str, arch: dict[str, Any], params: dict[str, Any], source: dict[str, Any]) -> str:
    """Writes OUT/checkpoints/0/state and OUT/config.json; returns OUT's absolute path."""
    import orbax.checkpoint as ocp

    out = os.path.abspath(out)
    state_dir = os.path.join(out, "checkpoints", "0", "state")
    if os.path.exists(state_dir):
        raise FileExistsError(f"{state_dir} exists: choose another OUT or remove it")
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(state_dir, {"model": params})
        ckptr.wait_until_finished()
    model = {k: v for k, v in arch.items() if k != "decoder"}
    extra = {"decoder": arch["decoder"]} if "decoder" in arch else {}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model": model, **extra, "converted_from": source}, f, indent=2)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lipjax.io.convert",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("kind", choices=sorted(FAMILIES))
    parser.add_argument("checkpoint", help="the .pth / .pt file")
    parser.add_argument("out", help="directory to write (the init_from of stage 1)")
    parser.add_argument("--heads", type=int, default=0,
                        help="attention heads, when neither shapes nor config give them")
    parser.add_argument("--with_ctc", action="store_true",
                        help="also import auto_avsr's CTC head (as model/ctc)")
    parser.add_argument("--with_decoder", action="store_true",
                        help="also import auto_avsr's attention decoder (as model/decoder; "
                             "config.json's \"decoder\" gives its sizes and token ids)")
    args = parser.parse_args(argv)
    arch, params = import_checkpoint(args.kind, args.checkpoint, heads=args.heads,
                                     with_ctc=args.with_ctc, with_decoder=args.with_decoder)
    out = save(args.out, arch, params, {"kind": args.kind,
                                        "checkpoint": os.path.abspath(args.checkpoint)})
    print(f"wrote {out} ({args.kind}: {json.dumps(arch)})")
    if "decoder" in arch:
        ids = arch["decoder"]
        print(f"the decoder's token ids are auto_avsr's (blank {ids['blank']}, sos/eos "
              f"{ids['sos']}), for its SentencePiece model; convert.attention_decoder builds it")
    print(f"stage 1 from it: python -m lipjax.train --config "
          f"configs/units_pretrain.py:base,init_from={out} --workdir WORKDIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
