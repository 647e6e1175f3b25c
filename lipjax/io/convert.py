"""Convert a pretrained checkpoint once; train without PyTorch afterwards.

    python -m lipjax.io.convert auto_avsr vsr_trlrs3vox2_base.pth out/pretrained/auto_avsr
    python -m lipjax.io.convert avhubert base_vox_iter5.pt out/pretrained/avhubert_base

OUT receives `checkpoints/0/state` (Orbax; {"model": {"visual": frontend + encoder, "ctc": the
CTC head with --with_ctc}}, the layout every lipjax stage reads, lipjax/tasks/common.py) and
`config.json`, whose "model" values build the lipjax model that fits it. Stage 1 starts from it
with `configs/units_pretrain.py:base,init_from=OUT` (fresh unit and language-ID heads).
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
from lipjax.models.lipreader import VisualEncoder
from lipjax.tasks.common import WEIGHTS

FAMILIES = {auto_avsr.KIND: auto_avsr, avhubert.KIND: avhubert}


def model_config(arch: dict[str, Any]) -> ml_collections.ConfigDict:
    """A config whose `model` block builds the imported architecture (float32)."""
    return ml_collections.ConfigDict({"model": factory.model_config("base", **arch),
                                      "train": {"dtype": "float32"}})


def import_checkpoint(kind: str, path: str, *, heads: int = 0, with_ctc: bool = False
                      ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config.model values, lipjax parameters {"visual": ..., ["ctc": ...]}) of a checkpoint."""
    if kind not in FAMILIES:
        raise ValueError(f"checkpoint kind {kind!r}: expected one of {sorted(FAMILIES)}")
    family = FAMILIES[kind]
    obj = read_checkpoint(path)
    tensors = Tensors(state_dict(obj, path), path)
    if kind == avhubert.KIND:
        if with_ctc:
            raise ValueError("--with_ctc: only auto_avsr checkpoints have a CTC head to import")
        config_obj = obj.get("cfg", obj.get("args")) if isinstance(obj, dict) else None
        arch = avhubert.architecture(tensors, plain(config_obj), heads)
    else:
        arch = auto_avsr.architecture(tensors)
        arch["heads"] = heads or arch["heads"]
    params: dict[str, Any] = {}
    if with_ctc:
        params["ctc"] = auto_avsr.ctc_head(tensors)
    abstract = nnx.eval_shape(lambda: factory.visual_encoder(model_config(arch), nnx.Rngs(0)))
    target = nnx.state(abstract, WEIGHTS).to_pure_dict()
    params["visual"] = fill(target, family.rules(tensors, arch), tensors,
                            family.ignored(tensors, with_ctc))
    return arch, params


def visual_encoder(arch: dict[str, Any], visual: dict[str, Any]) -> VisualEncoder:
    """The lipjax front end + encoder with imported weights, in evaluation mode."""
    model = factory.visual_encoder(model_config(arch), nnx.Rngs(0))
    state = nnx.state(model, WEIGHTS)
    nnx.replace_by_pure_dict(state, visual)
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
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump({"model": arch, "converted_from": source}, f, indent=2)
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
    args = parser.parse_args(argv)
    arch, params = import_checkpoint(args.kind, args.checkpoint, heads=args.heads,
                                     with_ctc=args.with_ctc)
    out = save(args.out, arch, params, {"kind": args.kind,
                                        "checkpoint": os.path.abspath(args.checkpoint)})
    print(f"wrote {out} ({args.kind}: {json.dumps(arch)})")
    print(f"stage 1 from it: python -m lipjax.train --config "
          f"configs/units_pretrain.py:base,init_from={out} --workdir WORKDIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
