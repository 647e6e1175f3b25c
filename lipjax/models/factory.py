"""Model sizes and construction from `config.model` (the one place that reads model keys).

Sizes: "base" is auto_avsr's VSR model exactly (ResNet-18 width 64, 12-layer Conformer d768,
12 heads, FFN 3072, kernel 31; 6-layer decoder) plus the paper's 4-layer memory encoder;
"tiny" and "small" keep the same structure at widths that train in seconds/minutes on a CPU.

Keys read (defaults in `SIZES` / `DEFAULTS`): model.frontend_width, norm ("batch" | "group"),
encoder ("conformer" | "transformer"), dim, heads, layers, ffn, kernel, dropout, unit_type
("phoneme" | "acoustic"), phoneme_targets ("sequence": CTC on the clip's phonemes | "frames":
frame CE on the phone sounding at each frame, where the corpus has it), unit_vocab (0 = phoneme
inventory size for phonemes, 100 for acoustic units), num_languages (0 = all registered),
languages (LMDecoder languages), text_vocab (0, the default: the size of the languages'
tokenizers, see `text_vocab`), memory_layers, decoder_layers,
memory_addressing ("attention" | "posterior" | "none": how stage-3 visual states read the
LMDecoder memory, see lipreader.MemoryRead), memory_heads (0 = heads), memory_residual,
memory_temperature (posterior addressing: the unit head's softmax temperature),
memory_units ("units" | "visemes": the memory's unit slots or their viseme groups, see
lipreader.LipReader); what pretrained checkpoints need (lipjax/io/ writes them, the defaults are
lipjax's own models): frontend_act ("swish" | "prelu" | "relu"), ffn_act ("swish" | "relu" |
"gelu"), final_norm (a LayerNorm after the last Conformer block), norm_eps (the encoder's
LayerNorms), encoder "avhubert" (AV-HuBERT's, models/conv_pos_encoder.py) with
pos_conv_kernel and pos_conv_groups;
train.dtype ("float32" | "bfloat16"), train.remat, train.remat_policy; and loss.lid_weight
(stage 1 has a language-ID head when it is > 0). Loss and decoding settings live in config.loss and
config.decoding, read by the tasks.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import ml_collections
from flax import nnx

from lipjax import languages
from lipjax.models.conformer import Encoder
from lipjax.models.conv_pos_encoder import ConvPosEncoder
from lipjax.models.frontend import Frontend
from lipjax.models.language_id import LanguageID
from lipjax.models.layers import compute_dtype
from lipjax.models.lipreader import LipReader, MemoryRead, VisualEncoder, VisualUnitModel
from lipjax.models.lmdecoder import LanguageDecoders, LMDecoder, LMDecoderModel
from lipjax.models.unit_head import UnitHead
from lipjax.units import tokenizer
from lipjax.units.targets import UnitTargets

log = logging.getLogger(__name__)

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(frontend_width=8, dim=64, heads=4, layers=2, ffn=128, kernel=7,
                 memory_layers=1, decoder_layers=1),
    "small": dict(frontend_width=8, dim=128, heads=4, layers=4, ffn=512, kernel=15,
                  memory_layers=1, decoder_layers=2),
    "base": dict(frontend_width=64, dim=768, heads=12, layers=12, ffn=3072, kernel=31,
                 memory_layers=4, decoder_layers=6),
}
DEFAULTS: dict[str, Any] = dict(
    norm="batch", encoder="conformer", dropout=0.1, unit_type="phoneme", unit_vocab=0,
    phoneme_targets="sequence",
    num_languages=0, languages=("en",), text_vocab=0,
    memory_addressing="attention", memory_heads=0, memory_residual=True, memory_units="units",
    memory_temperature=1.0,
    frontend_act="swish", ffn_act="swish", final_norm=False, norm_eps=1e-6,
    pos_conv_kernel=128, pos_conv_groups=16,
)


def model_config(size: str = "tiny", **overrides: Any) -> ml_collections.ConfigDict:
    """A complete `config.model` for one of SIZES (what configs/*.py start from)."""
    if size not in SIZES:
        raise ValueError(f"config model.size: expected one of {sorted(SIZES)}, found {size!r}")
    return ml_collections.ConfigDict({"size": size, **DEFAULTS, **SIZES[size], **overrides})


def get(config: ml_collections.ConfigDict, key: str) -> Any:
    """`config.model.<key>`, falling back to the size's value, then DEFAULTS; `text_vocab` is
    the resolved size (`text_vocab`), so that every reader of it gets the model's."""
    if key == "text_vocab":
        return text_vocab(config)
    return _get(config, key)


def _get(config: ml_collections.ConfigDict, key: str) -> Any:
    model = config.model
    if key in model:
        return model[key]
    size = model.get("size", "tiny")
    if key in SIZES.get(size, {}):
        return SIZES[size][key]
    if key in DEFAULTS:
        return DEFAULTS[key]
    raise KeyError(f"config model.{key}: missing and has no default")


def dtype_and_remat(config: ml_collections.ConfigDict) -> tuple[Any, bool | str]:
    """(compute dtype, remat): False, or with train.remat the name of train.remat_policy
    (models/stack.py REMAT_POLICIES; the front end's blocks always recompute fully)."""
    train = config.get("train", ml_collections.ConfigDict())
    remat = bool(train.get("remat", False)) and str(train.get("remat_policy", "full"))
    return compute_dtype(train.get("dtype", "float32")), remat


def unit_targets(config: ml_collections.ConfigDict) -> UnitTargets:
    """The run's units (config model.unit_type, model.phoneme_targets), resolved once."""
    return UnitTargets.from_names(get(config, "unit_type"), get(config, "phoneme_targets"))


def lid_weight(config: ml_collections.ConfigDict) -> float:
    """config loss.lid_weight: the weight of stage 1's language-ID loss (0 = no LID head)."""
    if "loss" not in config or "lid_weight" not in config.loss:
        raise KeyError("config loss.lid_weight: missing (configs/units_pretrain.py writes it; "
                       "0 builds no language-ID head)")
    return float(config.loss.lid_weight)


def unit_vocab(config: ml_collections.ConfigDict) -> int:
    """Size of the shared unit vocabulary (memory slots K, unit-head classes)."""
    return unit_targets(config).vocab_size(int(get(config, "unit_vocab")))


def lmdecoder_languages(config: ml_collections.ConfigDict) -> tuple[str, ...]:
    codes = get(config, "languages")
    return (codes,) if isinstance(codes, str) else tuple(codes)


def _data_dir(config: ml_collections.ConfigDict) -> str:
    data = config.get("data", None)
    return os.fspath(data.get("data_dir", "") or "") if data is not None else ""


def text_vocab_origin(config: ml_collections.ConfigDict) -> tuple[int, str]:
    """(size of the LMDecoders' text vocabulary, where it comes from).

    The size is the tokenizer's (`{data.data_dir}/tokenizers/{code}.model`, written by
    `python -m data_builders tokenizer`): a decoder whose output layer is larger than its
    tokenizer wastes outputs the targets never use, and one that is smaller cannot be trained.
    With several languages each LMDecoder has its own tokenizer's size (`text_vocabs`); the
    reader's outputs are padded to the largest (`lmdecoder.LanguageDecoders`), so this size is
    the largest tokenizer's.
    config model.text_vocab, when set (non-zero), must equal it; it alone sizes the model only
    where no tokenizer exists (a config without data, e.g. a benchmark on random batches).
    """
    explicit = int(_get(config, "text_vocab") or 0)
    codes = lmdecoder_languages(config)
    data_dir = _data_dir(config)
    found: dict[str, tuple[str, int]] = {}
    missing: list[str] = []
    for code in codes if data_dir else ():
        path = languages.get(code).tokenizer_path(data_dir)
        if path.exists():
            found[code] = (os.fspath(path), tokenizer.piece_count(path))
        else:
            missing.append(os.fspath(path))
    build = (f"`python -m data_builders tokenizer {codes[0]} --sources "
             f"mls/{codes[0]}/train+common_voice/{codes[0]}/train --data_dir "
             f"{data_dir or 'DATA_DIR'}` (builder/config/split of its built text)")
    if not found:
        if explicit:
            return explicit, "config model.text_vocab (no tokenizer found)"
        where = (f"no tokenizer at {', '.join(missing)} (config data.data_dir={data_dir})"
                 if data_dir else "the config has no data.data_dir to find tokenizers in")
        raise ValueError(f"config model.text_vocab is 0 (read it from the tokenizer of "
                         f"model.languages {list(codes)}) but {where}. Build the tokenizer "
                         f"with {build}, or point data.data_dir at the data it was built in.")
    if missing:
        raise ValueError(f"config model.languages {list(codes)}: no tokenizer at "
                         f"{', '.join(missing)} (config data.data_dir={data_dir}), while "
                         f"{', '.join(p for p, _ in found.values())} exist: every language's "
                         f"LMDecoder needs its tokenizer. Build the missing ones with {build}.")
    size = max(n for _, n in found.values())
    if len(found) == 1:
        origin = "the tokenizer {} ({} pieces)".format(*next(iter(found.values())))
    else:
        origin = ("the largest of the tokenizers "
                  + ", ".join(f"{p} ({n} pieces)" for p, n in found.values())
                  + ", each LMDecoder its own language's")
    if explicit and explicit != size:
        raise ValueError(f"config model.text_vocab={explicit} (set in the config or with "
                         f"--config.model.text_vocab) disagrees with {origin}: the text layer "
                         f"must have {size} outputs. Leave model.text_vocab out (0 reads the "
                         f"tokenizer), or rebuild the tokenizer if it is the one that is wrong.")
    return size, origin


def text_vocabs(config: ml_collections.ConfigDict) -> dict[str, int]:
    """Each LMDecoder's output size: its language's tokenizer's pieces (so a stage-2 run of
    one language loads into a reader of several), or `text_vocab` for all where no tokenizer
    exists (`text_vocab_origin` checks both)."""
    size, _ = text_vocab_origin(config)
    codes = lmdecoder_languages(config)
    data_dir = _data_dir(config)
    paths = {c: languages.get(c).tokenizer_path(data_dir) for c in codes} if data_dir else {}
    if paths and all(p.exists() for p in paths.values()):
        return {c: tokenizer.piece_count(p) for c, p in paths.items()}
    return {c: size for c in codes}


def text_vocab(config: ml_collections.ConfigDict) -> int:
    """Size of the LMDecoders' text vocabulary (`text_vocab_origin`)."""
    return text_vocab_origin(config)[0]


def num_languages(config: ml_collections.ConfigDict) -> int:
    return int(get(config, "num_languages")) or len(languages.codes())


def visual_encoder(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> VisualEncoder:
    dtype, remat = dtype_and_remat(config)
    fe = Frontend(get(config, "frontend_width"), get(config, "norm"),
                  act=get(config, "frontend_act"), dtype=dtype, remat=remat, rngs=rngs)
    sizes = (fe.out_dim, get(config, "dim"), get(config, "layers"), get(config, "heads"),
             get(config, "ffn"))
    common = dict(dropout=get(config, "dropout"), ffn_act=get(config, "ffn_act"),
                  norm_eps=float(get(config, "norm_eps")), dtype=dtype, remat=remat, rngs=rngs)
    if get(config, "encoder") == "avhubert":
        enc = ConvPosEncoder(*sizes, pos_kernel=get(config, "pos_conv_kernel"),
                             pos_groups=get(config, "pos_conv_groups"), **common)
    else:
        enc = Encoder(*sizes, kind=get(config, "encoder"), kernel=get(config, "kernel"),
                      norm=get(config, "norm"), final_norm=bool(get(config, "final_norm")),
                      **common)
    return VisualEncoder(fe, enc)


def unit_head(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> UnitHead:
    dtype, _ = dtype_and_remat(config)
    return UnitHead(get(config, "dim"), unit_vocab(config), dropout=get(config, "dropout"),
                    dtype=dtype, rngs=rngs)


def visual_unit_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> VisualUnitModel:
    dtype, _ = dtype_and_remat(config)
    visual = visual_encoder(config, rngs)
    lid = (LanguageID(get(config, "dim"), num_languages(config), dtype=dtype, rngs=rngs)
           if lid_weight(config) > 0 else None)
    return VisualUnitModel(visual, unit_head(config, rngs), lid)


def language_decoders(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LanguageDecoders:
    """One LMDecoder per model.languages, sized to the tokenizers (`text_vocab_origin`); the
    size's origin stays on the module (`text_vocab_origin`) so that loading a checkpoint of
    another size can say where this one came from (`tasks.common.load_subtrees`)."""
    dtype, remat = dtype_and_remat(config)
    vocab, origin = text_vocab_origin(config)
    sizes = text_vocabs(config)
    make = lambda code: LMDecoder(
        unit_vocab(config), sizes[code], get(config, "dim"),
        memory_layers=get(config, "memory_layers"), decoder_layers=get(config, "decoder_layers"),
        heads=get(config, "heads"), ffn=get(config, "ffn"), dropout=get(config, "dropout"),
        dtype=dtype, remat=remat, rngs=rngs)
    decoders = LanguageDecoders(lmdecoder_languages(config), make)
    decoders.text_vocab_origin = origin
    log.info("LMDecoder text vocabulary: %s pieces, from %s",
             ", ".join(f"{c} {n}" for c, n in sizes.items()) if len(sizes) > 1 else vocab,
             origin)
    return decoders


def lmdecoder_model(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LMDecoderModel:
    return LMDecoderModel(language_decoders(config, rngs))


def lipreader(config: ml_collections.ConfigDict, rngs: nnx.Rngs) -> LipReader:
    dtype, _ = dtype_and_remat(config)
    visual = visual_encoder(config, rngs)
    addressing = get(config, "memory_addressing")
    read, head = None, None
    if addressing != "none":
        # 0 = as many heads as the encoder (a single learnt head can collapse on few clips).
        heads = get(config, "memory_heads") or get(config, "heads")
        read = MemoryRead(get(config, "dim"), heads, addressing=addressing,
                          residual=get(config, "memory_residual"),
                          temperature=get(config, "memory_temperature"), dtype=dtype, rngs=rngs)
        if addressing == "posterior":
            head = unit_head(config, rngs)
    decoders = language_decoders(config, rngs)
    # Several languages: the language-ID head (stage 1's, over every registered language, so
    # its weights load) picks the decoder when the clip's language is not given.
    lid = (LanguageID(get(config, "dim"), num_languages(config), dtype=dtype, rngs=rngs)
           if len(decoders.codes) > 1 else None)
    return LipReader(visual, decoders, read, head, memory_units=get(config, "memory_units"),
                     lid=lid)
