"""The paper-size recipe on real corpora (Kim et al., ICCV 2023): every value of every run.

Stage 1 reads LRS3 (English, pretrain + train) and mTEDx/MuAViC Spanish and French video at
auto_avsr's size (`base`); stage 2 trains an LMDecoder for Italian and one for Portuguese on
MLS, VoxPopuli, Common Voice and mTEDx audio-text; stage 3 fine-tunes the lip reader on mTEDx
Italian / Portuguese video. Each run is one command, its workdir named as stage 3 expects:

    python -m lipjax.train --config configs/paper_lrs3_mtedx.py:stage=units_pretrain \
        --workdir out/runs/units_pretrain
    python -m lipjax.train --config configs/paper_lrs3_mtedx.py:stage=lmdecoder,lang=it \
        --workdir out/runs/lmdecoder_it                                  (and lang=pt)
    python -m lipjax.train --config configs/paper_lrs3_mtedx.py:stage=finetune,lang=it+pt \
        --workdir out/runs/finetune_it+pt
    python -m lipjax.train --config configs/paper_lrs3_mtedx.py:stage=finetune,lang=it \
        --workdir out/runs/finetune_it                   (and lang=pt: the paper's per-language)

Arguments: stage, lang (stages 2 and 3), data_dir (default out/data), runs_dir (default
out/runs: where stage 3 finds the runs of stages 1 and 2). Before training, build the corpora
and the tokenizers with `build_commands()` and `tokenizer_command()` below;
`python -m experiments.dry_run` runs those very commands on the builders' dummy data and
compiles one train step of each stage.

Effective batch: one optimizer update averages data.batch_size × optim.accumulate_steps clips
(data.batch_size is global, split over the devices): stage 1 8 × 32 = 256 clips, stage 2
64 × 4 = 256 sentences, stage 3 8 × 16 = 128 clips, on one device or many. The per-step batches
are sized for one 80 GB GPU at the largest buckets. With D devices, raise batch_size and lower
accumulate_steps by the same factor while a device's rows fit its memory (stage 1 on 8 such
GPUs: 64 × 4); BENCHMARKS.md ("Paper-size recipe") has XLA's memory plan per step.
train.num_steps counts batches (updates × accumulate_steps); the schedules count updates.

Where the values come from. The paper's released code (/work/shared/ARCHITECTURE.md §2):
Adam at 1e-3 on the tri-stage schedule (stages 2 and 3) for 60k updates (stage 2; stage 3
keeps configs/finetune.py's 20k, no count being given for it), a 1000-piece SentencePiece
model per language, beam 40. auto_avsr for the encoder (stage 1): AdamW 1e-3, weight decay
0.03, betas (0.9, 0.98), warm-up for 5 of 75 epochs then cosine, clipping at 5, and its
adaptive time mask (one span of up to 0.4 s per second of video); its lip reader's CTC weight
0.1, in training and in the beam search, for stage 3. lipjax's own choices where neither
says: phoneme units, CTC on the phone sequence in stage 1 (real corpora have no frame labels),
and the viseme read of experiments/recipe.py (stage 2 gives half its sentences as viseme
sequences, stage 3 reads the memory as viseme groups, `visemes_ctc` for a CTC unit head).

Long clips: the lrs3 builder cuts pretrain clips into pieces of at most 15 s
(`pretrain_max_seconds`), so the video frame buckets reach 375 frames and no LRS3 clip is
dropped; longer mTEDx segments are dropped and counted per source (`long_clips="crop"` would
cut frames away from a transcript that stays whole). Audio-text clips (stage 2) are kept up to
30 s. VoxPopuli has no Portuguese (data_builders/voxpopuli), so the pt LMDecoder reads three
corpora.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

from configs import common

STAGES = ("units_pretrain", "lmdecoder", "finetune")
HIGH_RESOURCE = ("en", "es", "fr")  # stage 1's video
LOW_RESOURCE = ("it", "pt")  # an LMDecoder and a fine-tuned lip reader each
JOINT = "+".join(LOW_RESOURCE)  # stage 3's one reader of both, its language-ID head routing

# Training mixtures, `BUILDER/CONFIG[/SPLIT]` (configs/common.py), equal shares: stage 1 gives
# English half of its stream (two LRS3 splits) and Spanish and French a quarter each.
STAGE1_SOURCES = ("lrs3/en/pretrain", "lrs3/en/train", "mtedx/es_video", "mtedx/fr_video")
AUDIO_TEXT_SOURCES = {
        "it": ("mls/it", "voxpopuli/it", "common_voice/it", "mtedx/it_audio"),
        "pt": ("mls/pt", "common_voice/pt", "mtedx/pt_audio"),
}
VIDEO_TEXT_SOURCES = {"it": ("mtedx/it_video",), "pt": ("mtedx/pt_video",)}
# What each builder must build (`python -m data_builders NAME --config C ...`).
CORPORA = {
        "lrs3": ("en",),
        "mtedx": ("es_video", "fr_video", "it_video", "pt_video", "it_audio", "pt_audio"),
        "mls": ("it", "pt"),
        "voxpopuli": ("it",),
        "common_voice": ("it", "pt"),
}
TOKENIZER_PIECES = 1000  # the paper's SentencePiece size per language

# Blocks every stage writes the same way.
DATA = {
        "builder": "",  # every entry names its builder; a bare CONFIG is an error
        "split": "train", "eval_split": "validation",
        "num_shards": 0,  # one data shard per JAX process
        "num_workers": 8, "read_threads": 4,  # grain worker processes and decoding threads
        "tokenizer_vocab": TOKENIZER_PIECES,
}
VIDEO = {  # stages 1 and 3: stage 3 loads stage 1's front end, so they read the same mouths
        "crop": 88, "downsample": 1, "hflip": True,
        "frame_buckets": (75, 150, 225, 300, 375), "max_frames": 375, "long_clips": "drop",
        # auto_avsr's adaptive time mask: per second of clip, a span of up to 10 frames.
        "time_masks": 0, "time_mask_per_second": 1.0, "time_mask_frames": 10,
}
MODEL = {  # auto_avsr's lip reader (ResNet-18 + 12 x 768 Conformer) + the paper's LMDecoder
        "size": "base", "frontend_width": 64, "norm": "batch", "encoder": "conformer",
        "dim": 768, "heads": 12, "layers": 12, "ffn": 3072, "kernel": 31, "dropout": 0.1,
        "memory_layers": 4, "decoder_layers": 6,
        "unit_type": "phoneme", "unit_vocab": 0,  # 0: the shared IPA inventory's size
        "phoneme_targets": "sequence",  # CTC on the phone sequence: no frame labels needed
        "num_languages": 0,  # the LID head names every registered language
        "text_vocab": 0,  # read from the language's tokenizer
        "memory_addressing": "attention", "memory_heads": 0, "memory_residual": True,
        "memory_units": "units", "memory_temperature": 1.0,
        # lipjax's own Conformer and front end (a converted checkpoint's values are written by
        # lipjax/io/ instead); pos_conv_* are read by the AV-HuBERT encoder only.
        "frontend_act": "swish", "ffn_act": "swish", "final_norm": False, "norm_eps": 1e-6,
        "pos_conv_kernel": 128, "pos_conv_groups": 16,
}
TRAIN = {
        "eval_split": "validation", "eval_batches": 0, "eval_at_start": False,
        "keep": 3, "mesh": {"data": -1}, "dtype": "bfloat16",
        "remat": False, "remat_policy": "full", "async_checkpoint": True,
}
OPTIM = {"clip_norm": 5.0, "b1": 0.9, "b2": 0.98, "eps": 1e-8, "freeze": ()}
# The paper's tri-stage schedule: warm-up from a small fraction of the rate, hold, decay.
TRISTAGE = {"lr": 1e-3, "schedule": "tristage", "weight_decay": 0.0,
            "phase_ratio": (0.1, 0.4, 0.5), "init_lr_scale": 0.01, "final_lr_scale": 0.05}
TEXT_LOSS = {"label_smoothing": 0.1, "token_dropout": 0.3}  # tasks/text.py
BEAM = {"beam_size": 40, "length_penalty": 0.0, "max_decode_len": 0}  # 0: the input length

# Keys a stage config links to others instead of holding a value (configs/common.link_units):
# data.units and data.unit_vocab (stage 3: rehearsal.data.* too) follow model.unit_type and
# model.unit_vocab.
LINKED = ("data.units", "data.unit_vocab", "rehearsal.data.units", "rehearsal.data.unit_vocab")


def units_pretrain_values(data_dir: str) -> dict[str, Any]:
    updates, accumulate = 60_000, 32
    return {
            "task": "units_pretrain", "seed": 0,
            "data": {**DATA, **VIDEO, "data_dir": data_dir, "sources": STAGE1_SOURCES,
                     "languages": HIGH_RESOURCE, "batch_size": 8,
                     "token_bucket": 64, "text_bucket": 16, "tokenize": False},
            "model": {**MODEL, "languages": list(HIGH_RESOURCE)},
            "loss": {"lid_weight": 0.3},
            # auto_avsr: 5 of 75 epochs of warm-up, i.e. 1/15 of the updates.
            "optim": {**OPTIM, "lr": 1e-3, "schedule": "cosine", "warmup_steps": updates // 15,
                      "weight_decay": 0.03, "final_lr_scale": 0.0,
                      "accumulate_steps": accumulate},
            "train": {**TRAIN, **_every(updates, accumulate), "best_metric": "per",
                      "best_mode": "min"},
    }


def audio_text_data(data_dir: str, codes: list[str]) -> dict[str, Any]:
    """Stage 2's data block (also stage 3's rehearsal of it): the languages' audio-text
    mixtures."""
    return {**DATA, "data_dir": data_dir,
            "sources": tuple(s for c in codes for s in AUDIO_TEXT_SOURCES[c]),
            "languages": tuple(codes), "batch_size": 64,
            # No video: one 30-s frame bucket (one compiled shape); large id buckets.
            "frame_buckets": (750,), "max_frames": 750, "long_clips": "drop",
            "token_bucket": 128, "text_bucket": 64, "tokenize": True,
            "crop": 88, "downsample": 1, "hflip": False,
            "time_masks": 0, "time_mask_per_second": 0.0, "time_mask_frames": 0}


LMDECODER_LOSS = {**TEXT_LOSS, "ctc_weight": 0.3, "frame_mix": 0.0,
                  "viseme_mix": 0.5,  # half the sentences as lips show them (stage 3)
                  "viseme_noise": 0.0}


def lmdecoder_values(data_dir: str, lang: str) -> dict[str, Any]:
    updates, accumulate = 60_000, 4
    return {
            "task": "lmdecoder", "seed": 0, "lang": lang,
            "data": audio_text_data(data_dir, [lang]),
            "model": {**MODEL, "languages": [lang]},
            "loss": dict(LMDECODER_LOSS),
            "decoding": {**BEAM, "decode_ctc_weight": 0.3},
            "optim": {**OPTIM, **TRISTAGE, "warmup_steps": updates // 10,
                      "accumulate_steps": accumulate},
            "train": {**TRAIN, **_every(updates, accumulate), "best_metric": "wer",
                      "best_mode": "min"},
    }


def finetune_values(data_dir: str, lang: str, runs_dir: str) -> dict[str, Any]:
    """One language's lip reader, or (lang=it+pt) one reader of several whose language-ID head
    (stage 1's, trained on their clips too) picks each clip's decoder."""
    updates, accumulate = 20_000, 16
    codes = lang.split("+")
    lmdecoders = {c: os.path.join(runs_dir, f"lmdecoder_{c}") for c in codes}
    stage1 = os.path.join(runs_dir, "units_pretrain")
    several = len(codes) > 1
    return {
            "task": "finetune", "seed": 0, "lang": lang,
            "data": {**DATA, **VIDEO, "data_dir": data_dir,
                     "sources": tuple(s for c in codes for s in VIDEO_TEXT_SOURCES[c]),
                     "languages": tuple(codes), "batch_size": 8,
                     "token_bucket": 64, "text_bucket": 32, "tokenize": True},
            "model": {**MODEL, "languages": codes, "memory_units": "visemes_ctc"},
            "loss": {**TEXT_LOSS, "ctc_weight": 0.1,  # auto_avsr's lip reader
                     "lid_weight": 0.3 if several else 0.0},  # stage 1's weight
            "decoding": {**BEAM, "decode_ctc_weight": 0.1, "route": "soft", "lid_weight": 1.0},
            "optim": {**OPTIM, **TRISTAGE, "warmup_steps": updates // 10,
                      "accumulate_steps": accumulate},
            # The loaded weights compete with the fine-tuned ones on validation; a reader of
            # several languages is scored as a user gets it, routed by its language-ID head.
            "train": {**TRAIN, **_every(updates, accumulate), "eval_at_start": True,
                      "best_metric": "wer_routed" if several else "wer", "best_mode": "min"},
            "init": {"encoder": stage1, "unit_head": "", "lid": stage1 if several else "",
                     "lmdecoder": lmdecoders if several else lmdecoders[lang]},
            # Off; `--config.rehearsal.weight=1` mixes stage 2's data and loss into every
            # step (lipjax/data/rehearsal.py).
            "rehearsal": {"weight": 0.0, "phoneme_targets": "sequence",
                          "data": audio_text_data(data_dir, codes),
                          "loss": dict(LMDECODER_LOSS)},
    }


def _every(updates: int, accumulate: int) -> dict[str, int]:
    """Loop lengths in batches for `updates` optimizer updates of `accumulate` batches each:
    a log line every 100 updates, a checkpoint every 1,000, validation every 2,000."""
    return {"num_steps": updates * accumulate, "log_every": 100 * accumulate,
            "checkpoint_every": 1000 * accumulate, "eval_every": 2000 * accumulate}


def values(stage: str, lang: str = "", data_dir: str = common.DEFAULT_DATA_DIR,
           runs_dir: str = "out/runs") -> dict[str, Any]:
    """Every value of one run: the top-level ones and, by config block, the others (what
    `get_config` writes)."""
    if stage not in STAGES:
        raise ValueError(f"configs/paper_lrs3_mtedx.py: stage must be one of {STAGES}, "
                         f"found {stage!r}")
    if stage == "units_pretrain" and lang:
        raise ValueError(f"configs/paper_lrs3_mtedx.py: stage=units_pretrain reads "
                         f"{'+'.join(HIGH_RESOURCE)} together; it takes no lang (found {lang!r})")
    langs = LOW_RESOURCE + ((JOINT,) if stage == "finetune" else ())
    if stage != "units_pretrain" and lang not in langs:
        raise ValueError(f"configs/paper_lrs3_mtedx.py: stage={stage} needs lang= one of "
                         f"{langs}, found {lang!r}")
    if stage == "units_pretrain":
        return units_pretrain_values(data_dir)
    if stage == "lmdecoder":
        return lmdecoder_values(data_dir, lang)
    return finetune_values(data_dir, lang, runs_dir)


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The stage's config (configs/<stage>.py at `base`) with every value written from here."""
    args = common.parse_arg(arg, {"variant": "base", "stage": "units_pretrain", "lang": "",
                                  "runs_dir": "out/runs"})
    if args.variant != "base":
        raise ValueError("configs/paper_lrs3_mtedx.py is the base size only; smaller sizes are "
                         "configs/<stage>.py:tiny|small")
    run = values(args.stage, args.lang, args.data_dir, args.runs_dir)
    config = stage_config(args.stage, args.lang, args.data_dir)
    _write(config, run)
    return config


def _write(block: ml_collections.ConfigDict, run: dict[str, Any]) -> None:
    """`run`'s values into `block`, sub-block by sub-block (keeping the links inside them)."""
    for name, value in run.items():
        if not isinstance(value, dict) or name == "mesh":
            block[name] = value
            continue
        if name not in block or not isinstance(block[name], ml_collections.ConfigDict):
            block[name] = ml_collections.ConfigDict()
        _write(block[name], value)


def stage_config(stage: str, lang: str, data_dir: str) -> ml_collections.ConfigDict:
    """configs/<stage>.py's own base config, before this file writes its values (the structure,
    argument checks and links this file builds on)."""
    import importlib

    module = importlib.import_module(f"configs.{stage}")
    arg = f"base,data_dir={data_dir}" + (f",lang={lang}" if lang else "")
    if stage == "finetune":
        arg += ",init=memory"
    return module.get_config(arg)


def run_name(stage: str, lang: str = "") -> str:
    """The run's workdir name under runs_dir (what stage 3's init reads)."""
    return stage if stage == "units_pretrain" else f"{stage}_{lang}"


def runs() -> list[tuple[str, str]]:
    """Every training run of the recipe as (stage, lang), in the order they can run."""
    return ([("units_pretrain", "")] + [("lmdecoder", lang) for lang in LOW_RESOURCE]
            + [("finetune", lang) for lang in LOW_RESOURCE] + [("finetune", JOINT)])


def build_commands(manual_dirs: dict[str, str], data_dir: str) -> list[list[str]]:
    """The corpus builds the recipe reads (data_builders/<name>/README.md), one command per
    builder; `manual_dirs` maps a builder to the folder holding its corpus as downloaded."""
    return [["python", "-m", "data_builders", name, "--manual_dir", manual_dirs[name],
             "--data_dir", data_dir] + [arg for config in configs for arg in ("--config", config)]
            for name, configs in CORPORA.items()]


def tokenizer_sources(lang: str) -> str:
    """The text a language's tokenizer learns from: the train splits of its audio-text corpora
    (the LMDecoder's mixture)."""
    return "+".join(f"{entry}/train" for entry in AUDIO_TEXT_SOURCES[lang])


def tokenizer_command(lang: str, data_dir: str) -> list[str]:
    return ["python", "-m", "data_builders", "tokenizer", lang, "--sources",
            tokenizer_sources(lang), "--data_dir", data_dir, "--vocab", str(TOKENIZER_PIECES)]
