"""Pieces shared by the three stage configs: argument parsing, sizes, data/optim/train blocks.

A config argument is `VARIANT[,key=value,...]`, e.g. `tiny`, `base,lang=it,init=memory`,
`small,data_dir=/data/lipjax`. Every stage takes `downsample=d`: the 96×96 mouths are averaged
in d×d blocks and cropped to 88/d pixels (0, the default, is 2 for small and 1 otherwise; the
demo uses d = 4, 22×22 crops, for a cheaper front end on a CPU). Stage 3 must use its stage 1's
d. VARIANT is tiny (seconds on a CPU, for tests), small (the CPU demo: minutes on 2 cores) or
base (auto_avsr sizes, for a GPU/TPU).

Every stage takes `sources=ENTRY+ENTRY+...`, the data mixture (`data.sources`): each entry is
`BUILDER/CONFIG[/SPLIT][@EVAL_SPLIT][:WEIGHT]` (lipjax/data/pipeline.py), BUILDER a corpus
package folder (lrs3, mtedx, mls, voxpopuli, common_voice, ... or synthetic_lips), SPLIT what
training reads (default `train`, or data.split), EVAL_SPLIT what evaluation reads (default
`validation`, or data.eval_split), WEIGHT its sampling share (default 1). Without it a stage
reads the synthetic corpus's configs of its `langs`/`lang` argument from the builder named by
`builder` (default synthetic_lips). On the command line the same string overrides the
config: `--config.data.sources=lrs3/en/pretrain+lrs3/en/train`.
"""

from __future__ import annotations

import os
from typing import Any

import ml_collections

VARIANTS = ("tiny", "small", "base")
DEFAULT_DATA_DIR = os.environ.get("LIPJAX_DATA_DIR", "out/data")


def parse_arg(arg: str | None, defaults: dict[str, Any]) -> ml_collections.ConfigDict:
    """`VARIANT,key=value,...` -> ConfigDict with `variant` and the keys of `defaults`.

    Values are converted to the type of the default (int, float, bool, str); a boolean is
    1/true/yes/y or 0/false/no/n (any case), anything else is an error rather than False.
    """
    true, false = ("1", "true", "yes", "y"), ("0", "false", "no", "n")
    out = dict(defaults)
    out.setdefault("variant", "small")
    out.setdefault("data_dir", DEFAULT_DATA_DIR)
    for token in (arg or "").split(","):
        token = token.strip()
        if not token:
            continue
        if "=" not in token:
            key, value = "variant", token
        else:
            key, value = (s.strip() for s in token.split("=", 1))
        if key not in out:
            raise ValueError(f"config argument {token!r}: unknown key {key!r}; expected one of "
                             f"{sorted(out)}")
        default = out[key]
        if isinstance(default, bool):
            if value.lower() not in true + false:
                raise ValueError(f"config argument {key}={value!r}: expected a boolean, one of "
                                 f"{true} or {false} (any case).")
            value = value.lower() in true
        elif isinstance(default, int | float):
            try:
                value = type(default)(value)
            except ValueError:
                raise ValueError(f"config argument {key}={value!r}: expected "
                                 f"{type(default).__name__}.") from None
        out[key] = value
    if out["variant"] not in VARIANTS:
        raise ValueError(f"config argument: variant must be one of {VARIANTS}, "
                         f"found {out['variant']!r}")
    return ml_collections.ConfigDict(out)


BATCH = {"tiny": 4, "small": 8, "base": 64}
# One shape per variant for CPU runs (every new shape is a new XLA compile, which on a CPU costs
# more than many steps): small clips are at most 3 s (75 frames), id sequences pad to 64.
FRAME_BUCKETS = {"tiny": (32, 64, 96), "small": (75,), "base": (50, 75, 100, 150)}
TOKEN_BUCKET = {"tiny": 16, "small": 64, "base": 16}


def data_sources(args: ml_collections.ConfigDict, configs: list[str]) -> tuple[str, ...]:
    """data.sources: the `sources` argument's entries when given, else `builder/config` for
    each of the stage's default `configs` (the `langs`/`lang` shorthand)."""
    given = args.get("sources", "")
    if given:
        return tuple(entry.strip() for entry in given.split("+") if entry.strip())
    builder = args.get("builder", "synthetic_lips")
    return tuple(f"{builder}/{config}" for config in configs)


def link_units(config: ml_collections.ConfigDict) -> None:
    """For the stages that learn from unit targets (1 and 2), the loader checks them (missing
    acoustic units, ids past the vocabulary): data.units and data.unit_vocab follow
    model.unit_type and model.unit_vocab, command-line overrides included."""
    config.data.units = config.model.get_ref("unit_type")
    config.data.unit_vocab = config.model.get_ref("unit_vocab")


def data_config(args: ml_collections.ConfigDict, sources: tuple[str, ...], *,
                train: bool = True) -> ml_collections.ConfigDict:
    """The `data` block read by lipjax/data/pipeline.py (keys and defaults: its DEFAULTS)."""
    v = args.variant
    downsample = args.get("downsample", 0) or (2 if v == "small" else 1)
    if downsample < 1 or 88 % downsample:
        raise ValueError(f"config argument downsample={downsample}: expected a divisor of 88 "
                         "such as 1, 2, 4 or 8 (88/d-pixel crops of 96x96 mouths averaged d x d)")
    return ml_collections.ConfigDict({
        "data_dir": args.data_dir,
        "sources": tuple(sources),
        "split": "train",  # the training split of sources that name none
        "eval_split": "validation",  # the evaluation split of sources that name none
        "languages": (),  # the languages sources may hold (stages 2 and 3: their lang)
        "batch_size": args.get("batch_size", 0) or BATCH[v],
        "frame_buckets": FRAME_BUCKETS[v],
        "max_frames": FRAME_BUCKETS[v][-1],
        # Training clips over max_frames: "drop" keeps every transcript true to its clip;
        # "crop" cuts a window, right for per-frame targets only (the text stays whole).
        "long_clips": "drop",
        "token_bucket": TOKEN_BUCKET[v],
        # small (the CPU sizes) reads 48x48 mouths (96x96 averaged 2x2), cropped to 44; the
        # `downsample` argument d changes that to 96/d, cropped to 88/d.
        "downsample": downsample,
        "crop": 88 // downsample,
        "hflip": train,
        "time_mask_frames": 0 if v == "tiny" else 10,
        "time_masks": 0 if v == "tiny" else 2,
        "tokenizer_vocab": 1000,
        "num_workers": 0,
    })


def optim_config(lr: float, schedule: str = "cosine", warmup_steps: int = 0, *,
                 weight_decay: float = 0.03, clip_norm: float = 5.0, b1: float = 0.9,
                 b2: float = 0.98) -> ml_collections.ConfigDict:
    """AdamW + clipping; schedule "cosine" (warm-up + cosine) or "tristage" (fairseq)."""
    cfg = ml_collections.ConfigDict({
        "lr": lr, "schedule": schedule, "warmup_steps": warmup_steps,
        "weight_decay": weight_decay, "clip_norm": clip_norm, "b1": b1, "b2": b2,
        "final_lr_scale": 0.0 if schedule == "cosine" else 0.05,
        "freeze": (),  # parameter sub-trees kept fixed, e.g. ("decoders",) (train/schedules.py)
    })
    if schedule == "tristage":
        cfg.phase_ratio = (0.1, 0.4, 0.5)
        cfg.init_lr_scale = 0.01
    return cfg


def train_config(args: ml_collections.ConfigDict, num_steps: dict[str, int], *,
                 best_metric: str, best_mode: str = "min") -> ml_collections.ConfigDict:
    """Loop, logging, checkpointing, mesh and precision. `num_steps` per variant."""
    v = args.variant
    steps = args.get("steps", 0) or num_steps[v]
    every = {"tiny": max(steps // 2, 1), "small": max(steps // 2, 1), "base": 2000}[v]
    return ml_collections.ConfigDict({
        "num_steps": steps,
        "log_every": {"tiny": 1, "small": 10, "base": 100}[v],
        "eval_every": every,
        # "validation": each source's evaluation split (data.eval_split, or its own @SPLIT);
        # another name (e.g. "test") reads that split of every source.
        "eval_split": "validation",
        "eval_at_start": False,  # also evaluate (and keep) the step-0 weights: see finetune.py
        "eval_batches": 0,  # per evaluated source; 0 = the whole split
        "checkpoint_every": every,
        "keep": 2 if v != "base" else 3,
        "best_metric": best_metric,
        "best_mode": best_mode,
        "mesh": {"data": -1},  # add "fsdp": N to shard parameters and optimizer state
        "dtype": "bfloat16" if v == "base" else "float32",
        "remat": False,
        "remat_policy": "full",  # with remat: "full" | "dots" | "dots_all" (models/stack.py)
        "async_checkpoint": True,
    })


def model_config(args: ml_collections.ConfigDict, **overrides: Any) -> ml_collections.ConfigDict:
    """The `model` block: lipjax/models/factory.py's sizes for the variant, plus overrides.

    tiny / small / base are the factory's sizes (base = auto_avsr: ResNet-18 + 12-layer
    Conformer d768, 12 heads, FFN 3072, kernel 31; 4-layer memory encoder, 6-layer decoder).
    """
    from lipjax.models import factory

    return factory.model_config(args.variant, **overrides)
