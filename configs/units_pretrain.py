"""Stage 1: shared speech units + language ID from the high-resource languages' lip videos.

    python -m lipjax.train --config configs/units_pretrain.py:small \
        --workdir out/runs/units_pretrain

Arguments (`:VARIANT,key=value,...`): variant tiny|small|base; langs (`+`-separated, default
en+es+fr); units phoneme (default; the shared IPA inventory) | acoustic (per-frame CE over
k-means units), the same argument and default as stages 2 and 3; phoneme_targets sequence
(CTC) | frames (frame CE on the phone at each frame,
synthetic corpora only: see lipjax/tasks/units_pretrain.py); data_dir; builder; batch_size;
downsample (configs/common.py); steps.
"""

from __future__ import annotations

import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = common.parse_arg(arg, {"langs": "en+es+fr", "units": "phoneme",
                                  "phoneme_targets": "sequence", "builder": "synthetic_lips",
                                  "batch_size": 0, "downsample": 0, "steps": 0})
    v = args.variant
    langs = [code for code in args.langs.split("+") if code]
    config = ml_collections.ConfigDict()
    config.task = "units_pretrain"
    config.seed = 0
    config.data = common.data_config(args, [(f"{code}_video", 1.0) for code in langs])
    config.data.tokenize = False  # stage 1 needs no text tokens
    config.model = common.model_config(args, unit_type=args.units, languages=langs,
                                       phoneme_targets=args.phoneme_targets)
    from lipjax.models import factory

    if factory.unit_targets(config).frames:
        # Time masking blanks up to 2 x 10 frames of each clip: fine for CTC, which still has the
        # whole sequence to align, but a frame target on a blank frame is a guess. Measured
        # (small, five languages, 200 steps): validation VER 68 % with the masks, 44 % without.
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
    return config
