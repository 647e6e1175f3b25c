"""Stage 3: the lip reader for a low-resource language, fine-tuned on its few video-text clips.

    python -m lipjax.train --config configs/finetune.py:small,lang=it,init=memory \
        --workdir out/runs/finetune_it_memory

The paper's data for Italian (Portuguese: the same with pt): mTEDx/MuAViC Italian video, built
first (data_builders/mtedx/README.md), after stages 1 and 2 wrote their runs to runs_dir:

    python -m lipjax.train --config configs/finetune.py:base,lang=it,init=memory,\
data_dir=out/data,sources=mtedx/it_video --workdir out/runs/finetune_it_memory

One reader of several languages (`lang=it+pt`): one checkpoint with the visual encoder, the
unit head, stage 1's language-ID head and one LMDecoder per language, fine-tuned on their clips
together; at inference the language-ID head picks the decoder (route=hard|soft,
lipjax/tasks/routing.py), and evaluation reports the labelled language's WER (wer), the routed
one (wer_routed) and the head's accuracy (lid_accuracy), per language (source):

    python -m lipjax.train --config configs/finetune.py:small,lang=it+pt,init=posterior \
        --workdir out/runs/finetune_it+pt_posterior

Arguments: variant tiny|small|base; lang (required; `+` joins several); init:
  memory    (the proposed model) visual encoder from stage 1 + the language's LMDecoder from
            stage 2; visual states read the language's unit memory by learnt attention;
  posterior (the proposed model, posterior addressing) as memory, but the stage-1 unit head's
            posteriors weight the memory slots;
  noread    (ablation c) stage-1 encoder + the stage-2 LMDecoder's weights, no memory read
            (separates "the LMDecoder's trained decoder" from "the memory lookup");
  nomemory  (baseline b) stage-1 encoder + a plain decoder, no memory;
  scratch   (baseline a) everything trained from scratch on the low-resource clips.
init_from (with init=scratch or nomemory: the visual encoder of a converted pretrained
checkpoint, `python -m lipjax.io.convert`, and its architecture); runs_dir (default out/runs)
is where stages 1 and 2 wrote their workdirs
(`units_pretrain`, `lmdecoder_{lang}`); stage1 (default {runs_dir}/units_pretrain) the stage-1
run itself, e.g. stage1=out/demo/runs/units_pretrain for the one `make demo` trains; units
acoustic|phoneme (must match stages 1 and 2: the memory is stage 2's unit embedding table);
sources (the mixture, configs/common.py; default `{builder}/{lang}_video`, entries must hold
`lang` clips); data_dir; builder (default synthetic_lips); batch_size; downsample
(configs/common.py); steps; rehearsal (weight of stage 2's loss on the languages'
audio-text data, one batch of it beside each video batch: lipjax/data/rehearsal.py; default 0,
off) and rehearsal_sources (default `{builder}/{lang}_audio` per language).

With phoneme units, `--config.model.memory_units=visemes` reads the memory as viseme groups,
one input per run of frames (lipreader.LipReader), for an LMDecoder trained with
loss.viseme_mix > 0; the recipe (experiments/recipe.py) does so for `memory` and `posterior`,
the latter with `--config.model.memory_residual=false` and
`--config.model.memory_temperature=0.05` (near-hard posteriors). `--config.optim.freeze` lists
parameter sub-trees to keep fixed (e.g. "('decoders',)").
"""

from __future__ import annotations

import os

import ml_collections

from configs import common, units_pretrain
from configs import lmdecoder as lmdecoder_cfg

INITS = ("memory", "posterior", "noread", "nomemory", "scratch")
ADDRESSING = {"memory": "attention", "posterior": "posterior"}  # the others read no memory


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = common.parse_arg(arg, {"lang": "", "sources": "", "init": "memory",
                                  "runs_dir": "out/runs",
                                  "stage1": "",
                                  "units": "phoneme", "phoneme_targets": "sequence",
                                  "route": "soft", "init_from": "",
                                  "rehearsal": 0.0, "rehearsal_sources": "",
                                  "builder": "synthetic_lips",
                                  "batch_size": 0, "downsample": 0, "steps": 0})
    if not args.lang:
        raise ValueError("configs/finetune.py: the argument needs lang=xx, or several as "
                         "lang=xx+yy (e.g. configs/finetune.py:small,lang=it+pt,init=memory)")
    if args.init not in INITS:
        raise ValueError(f"configs/finetune.py: init must be one of {INITS}, found {args.init!r}")
    codes = [code for code in args.lang.split("+") if code]
    if len(set(codes)) != len(codes):
        raise ValueError(f"configs/finetune.py: lang={args.lang} names a language twice")
    if args.init_from and args.init not in ("scratch", "nomemory"):
        raise ValueError(f"configs/finetune.py: init_from={args.init_from} gives the visual "
                         f"encoder a converted checkpoint's weights, for the baselines "
                         f"init=scratch or init=nomemory; init={args.init} takes its encoder "
                         "from stage 1 (start stage 1 from the checkpoint instead: "
                         "configs/units_pretrain.py:...,init_from=DIR)")
    v = args.variant
    config = ml_collections.ConfigDict()
    config.task = "finetune"
    config.seed = 0
    config.lang = args.lang
    config.data = common.data_config(args, common.data_sources(args, [f"{c}_video" for c in codes]))
    config.data.languages = tuple(codes)
    config.model = common.model_config(args, unit_type=args.units,
                                       phoneme_targets=args.phoneme_targets, languages=codes,
                                       **units_pretrain.converted_model(args.init_from),
                                       memory_addressing=ADDRESSING.get(args.init, "none"))
    # No data.units: stage 3 learns text from video and reads no unit targets.
    config.loss = ml_collections.ConfigDict({  # read by lipjax/tasks/text.py
        "ctc_weight": 0.3,  # (1 - w) CE + w CTC
        "label_smoothing": 0.1,
        "token_dropout": 0.3,  # as stage 2: the decoder reads the states, not its history
        # Several languages: the language-ID head that routes clips trains on them too (the
        # weight of stage 1's).
        "lid_weight": 0.3 if len(codes) > 1 else 0.0,
    })
    config.decoding = ml_collections.ConfigDict({  # joint CTC/attention beam search
        "beam_size": 10,
        "decode_ctc_weight": 0.3,
        "length_penalty": 0.0,
        "max_decode_len": {"tiny": 16, "small": 32, "base": 0}[v],  # 0 = input length
        # Several languages: which decoder reads a clip when its language is not given
        # (lipjax/tasks/routing.py; `lipjax transcribe` follows it): soft lets a confident
        # transcript overrule an unsure language-ID head (experiments/results/README.md
        # compares the two). Evaluation scores hard, soft and the labelled language.
        "route": args.route,
        "lid_weight": 1.0,  # soft routing: weight of log P(language) beside the beam score
    })
    config.optim = common.optim_config(lr={"tiny": 1e-3, "small": 1e-3, "base": 3e-4}[v],
                                       warmup_steps={"tiny": 1, "small": 10, "base": 1000}[v])
    config.train = common.train_config(args, {"tiny": 4, "small": 40, "base": 20_000},
                                       # several languages: the routed reader is the one
                                       # a user gets
                                       best_metric="wer_routed" if len(codes) > 1 else "wer")
    # The loaded weights compete with the fine-tuned ones on validation: on few clips
    # fine-tuning can end worse than it starts (experiments/results/README.md).
    config.train.eval_at_start = args.init != "scratch"
    config.rehearsal = rehearsal_config(args, codes, config.model)
    stage1 = args.stage1 or os.path.join(args.runs_dir, "units_pretrain")
    lmdecoders = {c: os.path.join(args.runs_dir, f"lmdecoder_{c}") for c in codes}
    encoder = os.path.abspath(args.init_from) if args.init_from else (
        "" if args.init == "scratch" else stage1)
    config.init = ml_collections.ConfigDict({  # read by lipjax/tasks/finetune.py
        "encoder": encoder,
        "unit_head": stage1 if args.init == "posterior" else "",
        "lid": stage1 if len(codes) > 1 and args.init != "scratch" else "",
        # One workdir for one language (a path to override on the command line), a
        # {code: workdir} block for several.
        "lmdecoder": (lmdecoders if len(codes) > 1 else lmdecoders[codes[0]])
        if args.init in ("memory", "posterior", "noread") else "",
    })
    return config


def rehearsal_config(args: ml_collections.ConfigDict, codes: list[str],
                     model: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The `rehearsal` block (lipjax/data/rehearsal.py): weight 0 (off) unless the argument
    `rehearsal=W` asks for stage 2's loss on the languages' audio-text data beside every video
    batch; the data (`rehearsal_sources`, default `{builder}/{lang}_audio` per language) and
    the loss are stage 2's (configs/lmdecoder.py)."""
    given = ml_collections.ConfigDict({"sources": args.rehearsal_sources,
                                       "builder": args.builder})
    data = common.data_config(args, common.data_sources(given, [f"{c}_audio" for c in codes]))
    data.languages = tuple(codes)
    data.batch_size = lmdecoder_cfg.AUDIO_BATCH[args.variant]
    data.units = model.get_ref("unit_type")
    data.unit_vocab = model.get_ref("unit_vocab")
    return ml_collections.ConfigDict({
        "weight": float(args.rehearsal),
        "data": data,
        "loss": lmdecoder_cfg.loss_config(),
        # What the LMDecoders read in stage 2 (configs/lmdecoder.py's default).
        "phoneme_targets": "sequence",
    })
