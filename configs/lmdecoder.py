"""Stage 2: the per-language LMDecoder (unit memory -> text) on audio-text data only.

    python -m lipjax.train --config configs/lmdecoder.py:small,lang=it \
        --workdir out/runs/lmdecoder_it

The paper's mixture for Italian: MLS, VoxPopuli, Common Voice and mTEDx audio, each built first
(data_builders/<name>/README.md); Portuguese the same without VoxPopuli, which has no pt:

    python -m lipjax.train --config configs/lmdecoder.py:base,lang=it,data_dir=out/data,\
sources=mls/it+voxpopuli/it+common_voice/it+mtedx/it_audio \
        --workdir out/runs/lmdecoder_it

`common_voice` is lipjax's builder (TFDS name lipjax_common_voice), never TFDS's own dataset.
Every entry must hold `lang` clips (data.languages); weights are sampling shares, not sizes
(`mls/it:2` reads MLS twice as often). With units=acoustic the entries must be built with
units from one shared codebook (`--units_codebook`, configs named accordingly).

Arguments: variant tiny|small|base; lang (required, e.g. it); sources (the mixture,
configs/common.py; default `{builder}/{lang}_audio`); units phoneme (default) | acoustic
(k-means units of the audio track, repeats removed, the paper's recipe); phoneme_targets
sequence (the phone sequence) | frames (the phone of each 25 Hz frame, where the corpus has it:
what a lip reader's frames give in stage 3); data_dir; builder (default synthetic_lips);
batch_size; downsample (unused: no video); steps. Loss = label-smoothed CE (0.1) + CTC.
base: Adam 1e-3 with the tri-stage schedule as in the released code; tiny/small (128 wide or
less) learn faster at 3e-3 with warm-up + cosine (experiments/results/README.md).
"""

from __future__ import annotations

import ml_collections

from configs import common

# Unit sequences are cheap next to video: larger batches than stage 1's and 3's.
AUDIO_BATCH = {"tiny": 8, "small": 32, "base": 256}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = common.parse_arg(arg, {"lang": "", "sources": "", "units": "phoneme",
                                  "phoneme_targets": "sequence",
                                  "builder": "synthetic_lips",
                                  "batch_size": 0, "downsample": 0, "steps": 0})
    if not args.lang:
        raise ValueError("configs/lmdecoder.py: the argument needs lang=xx "
                         "(e.g. configs/lmdecoder.py:small,lang=it)")
    v = args.variant
    config = ml_collections.ConfigDict()
    config.task = "lmdecoder"
    config.seed = 0
    config.lang = args.lang
    config.data = common.data_config(args, common.data_sources(args, [f"{args.lang}_audio"]))
    config.data.languages = (args.lang,)
    if not args.batch_size:
        config.data.batch_size = AUDIO_BATCH[v]
    config.model = common.model_config(args, unit_type=args.units,
                                       phoneme_targets=args.phoneme_targets,
                                       languages=[args.lang])
    common.link_units(config)
    config.loss = loss_config()
    config.decoding = ml_collections.ConfigDict({  # joint CTC/attention beam search
        "beam_size": 10,
        "decode_ctc_weight": 0.3,
        "length_penalty": 0.0,
        "max_decode_len": {"tiny": 16, "small": 32, "base": 0}[v],  # 0 = input length
    })
    if v == "base":
        config.optim = common.optim_config(lr=1e-3, schedule="tristage", weight_decay=0.0)
    else:
        config.optim = common.optim_config(lr=3e-3, warmup_steps={"tiny": 1, "small": 30}[v],
                                           weight_decay=0.0)
    config.train = common.train_config(args, {"tiny": 4, "small": 700, "base": 60_000},
                                       best_metric="wer")
    config.init = ml_collections.ConfigDict()
    return config


def loss_config() -> ml_collections.ConfigDict:
    """Stage 2's loss block (also stage 3's rehearsal of it, configs/finetune.py)."""
    return ml_collections.ConfigDict({  # read by lipjax/tasks/text.py
        # (1 - w) CE + w CTC; the paper's range is 0.1-0.3: the CTC head aligns fastest.
        "ctc_weight": 0.3,
        "label_smoothing": 0.1,
        # Hide a share of the decoder's own history so it reads the units instead of reciting
        # training sentences (experiments/results/README.md).
        "token_dropout": 0.3,
        # Shares of training examples given as frame-rate phones and as viseme sequences
        # (tasks/lmdecoder.unit_input; lipjax/models/visemes.py: what lips can show, the input
        # of stage 3's model.memory_units="visemes").
        "frame_mix": 0.0,
        "viseme_mix": 0.0,
        # Share of the viseme sequences' groups replaced, dropped or added at random
        # (lipjax/models/visemes.corrupt): stage 1's kinds of error.
        "viseme_noise": 0.0,
    })
