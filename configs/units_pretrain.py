"""Stage 1: shared speech units + language ID from the high-resource languages' lip videos.

    python -m lipjax.train --config configs/units_pretrain.py:small \
        --workdir out/runs/units_pretrain

The paper's mixture: LRS3 English (pretrain and train) with mTEDx/MuAViC Spanish and French
video, each built first (data_builders/lrs3/README.md, data_builders/mtedx/README.md):

    python -m lipjax.train --config configs/units_pretrain.py:base,data_dir=out/data,\
sources=lrs3/en/pretrain+lrs3/en/train+mtedx/es_video+mtedx/fr_video \
        --workdir out/runs/units_pretrain

Weights are sampling shares, not sizes: `mtedx/es_video:0.5` reads Spanish half as often as a
weight-1 entry. Acoustic units (units=acoustic) need corpora built with units, whose configs
carry the codebook in their name: `lrs3/en_k100/pretrain+...` after
`python -m data_builders lrs3 ... --units_k 100`. Evaluation reads each entry's validation
split (LRS3's is carved out of trainval); `--config.data.split=pretrain` changes the training
split of every entry that names none.

Arguments (`:VARIANT,key=value,...`): variant tiny|small|base; sources (the mixture,
configs/common.py); langs (`+`-separated, default en+es+fr: without sources, the mixture is
`{builder}/{lang}_video` of each); units phoneme (default; the shared IPA inventory) | acoustic
(per-frame CE over k-means units), the same argument and default as stages 2 and 3;
phoneme_targets sequence (CTC) | frames (frame CE on the phone at each frame, synthetic
corpora only: see lipjax/tasks/units_pretrain.py); data_dir; builder (default synthetic_lips);
batch_size; downsample (configs/common.py); steps; init_from (a directory written by
`python -m lipjax.io.convert`: the model takes the converted architecture from its config.json
and starts from its front end + encoder, with fresh unit and language-ID heads), e.g.

    python -m lipjax.io.convert auto_avsr vsr_trlrs3vox2_base.pth out/pretrained/auto_avsr
    python -m lipjax.train --config=configs/units_pretrain.py:base,init_from=\
out/pretrained/auto_avsr --workdir out/runs/units_pretrain
"""

from __future__ import annotations

import json
import os

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = common.parse_arg(arg, {"langs": "en+es+fr", "sources": "", "units": "phoneme",
                                  "phoneme_targets": "sequence", "builder": "synthetic_lips",
                                  "batch_size": 0, "downsample": 0, "steps": 0,
                                  "init_from": ""})
    v = args.variant
    langs = [code for code in args.langs.split("+") if code]
    config = ml_collections.ConfigDict()
    config.task = "units_pretrain"
    config.seed = 0
    config.data = common.data_config(
            args, common.data_sources(args, [f"{code}_video" for code in langs]))
    config.data.tokenize = False  # stage 1 needs no text tokens
    config.model = common.model_config(args, unit_type=args.units, languages=langs,
                                       phoneme_targets=args.phoneme_targets,
                                       **converted_model(args.init_from))
    common.link_units(config)
    from lipjax.models import factory

    if factory.unit_targets(config).frames:
        # Time masking blanks up to 2 x 10 frames of each clip: fine for CTC, which still has the
        # whole sequence to align, but a frame target on a blank frame is a guess.
        config.data.time_masks = 0
    config.loss = ml_collections.ConfigDict({  # read by lipjax/tasks/units_pretrain.py
        # LID is learnt from lips alone (one speaker pool for all languages): a weight that
        # lets it move. 0 builds no language-ID head.
        "lid_weight": 0.3,
    })
    config.optim = common.optim_config(lr={"tiny": 1e-3, "small": 2e-3, "base": 1e-3}[v],
                                       warmup_steps={"tiny": 2, "small": 50, "base": 5000}[v])
    config.train = common.train_config(
        args, {"tiny": 4, "small": 500, "base": 60_000},
        best_metric="per")  # unit error rate (phones or acoustic units)
    config.init = ml_collections.ConfigDict()
    if args.init_from:  # read by lipjax/tasks/units_pretrain.py (load_pretrained)
        config.init.encoder = os.path.abspath(args.init_from)
    return config


def converted_model(path: str) -> dict:
    """The model values of a converted checkpoint (its config.json, lipjax/io/convert.py), which
    replace the variant's sizes: the weights fit no other architecture."""
    if not path:
        return {}
    saved = os.path.join(path, "config.json")
    if not os.path.exists(saved):
        raise FileNotFoundError(f"config argument init_from={path}: no {saved}; write the "
                                f"directory with `python -m lipjax.io.convert KIND CHECKPOINT "
                                f"{path}`")
    with open(saved) as f:
        return dict(json.load(f)["model"])
