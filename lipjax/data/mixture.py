"""The data mixture: which built corpus splits a run reads, and in what shares.

A mixture is data in the config: `data.sources` lists built corpus configs as
`BUILDER/CONFIG[/SPLIT][@EVAL_SPLIT][:WEIGHT]` entries, joined by `+` in one string (the
command-line form, `--config.data.sources=lrs3/en/pretrain+lrs3/en/train+mtedx/es_video:0.5`) or
as a tuple of such strings in a config file. BUILDER is the corpus package folder
(data_builders/<name>; `common_voice` is lipjax's builder, never TFDS's own), SPLIT what training
reads (default data.split, "train"), EVAL_SPLIT what evaluation reads (default data.eval_split,
"validation"), WEIGHT the share of the stream sampled from it (default 1; shares, not sizes).
A bare CONFIG with a data.builder, and (entry, weight) pairs, are the older form, still read.
The input pipeline (lipjax/data/pipeline.py) opens what this module names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

TRAIN, EVAL = "train", "validation"  # the stage's two splits, which a source may rename
SOURCE_SYNTAX = "BUILDER/CONFIG[/SPLIT][@EVAL_SPLIT][:WEIGHT]"
# What a data config that names none of these means.
DEFAULTS: dict[str, Any] = {
        "builder": "synthetic_lips",  # the builder of a source written as a bare CONFIG
        "split": TRAIN,  # what training reads from a source that names no split
        "eval_split": EVAL,  # what evaluation reads from a source that names no eval split
}


def config_value(data_cfg: Any, key: str, defaults: dict[str, Any] = DEFAULTS) -> Any:
    """data.`key` (a ConfigDict, dict or object), or its default when unset or None."""
    value = data_cfg.get(key, None) if hasattr(data_cfg, "get") else getattr(data_cfg, key, None)
    if value is None:
        if key not in defaults:
            raise KeyError(f"data config is missing the key data.{key}.")
        return defaults[key]
    return value


def _get(data_cfg: Any, key: str) -> Any:
    return config_value(data_cfg, key)


@dataclasses.dataclass(frozen=True)
class Source:
    """One entry of data.sources: a built corpus config, the splits it is read from, its
    sampling weight, and its position `index` in data.sources (the batches' `source`).

    `split` / `eval_split` are None when the entry names none (data.split / data.eval_split
    then apply); `builder` is None for a bare CONFIG (data.builder then applies)."""

    builder: str | None
    config: str
    split: str | None = None
    eval_split: str | None = None
    weight: float = 1.0
    index: int = 0

    @property
    def spec(self) -> str:
        """The entry as written in data.sources, without its weight."""
        text = self.config if self.builder is None else f"{self.builder}/{self.config}"
        text += f"/{self.split}" if self.split else ""
        return text + (f"@{self.eval_split}" if self.eval_split else "")

    @property
    def name(self) -> str:
        return f"{self.builder}/{self.config}"

    def read_split(self, split: str) -> str:
        """The split this source reads when a loader asks for `split`: TRAIN and EVAL stand
        for the stage's two splits, which each source may name for itself; any other split
        (e.g. "test") is read as it is."""
        if split == TRAIN:
            return self.split or TRAIN
        if split == EVAL:
            return self.eval_split or EVAL
        return split

    def label(self, split: str = TRAIN) -> str:
        """`builder/config/split`: how logs, errors and per-source metrics name it."""
        return f"{self.name}/{self.read_split(split)}"


def parse_source(spec: str, weight: float | None = None, index: int = 0) -> Source:
    """One data.sources entry, `BUILDER/CONFIG[/SPLIT][@EVAL_SPLIT][:WEIGHT]` (a bare CONFIG
    is the older form, read with data.builder); `weight` from an (entry, weight) pair."""
    text = str(spec).strip()
    where = f"data.sources entry {text!r}"
    expected = (f"expected {SOURCE_SYNTAX}, e.g. lrs3/en/pretrain, mtedx/es_video:0.5 or "
                "voxceleb2/units100/train@test")
    colon = _weight_colon(text)
    if colon >= 0:
        if weight is not None:
            raise ValueError(f"{where} has a weight of its own and another in its pair "
                             f"({weight}); give one.")
        try:
            weight = float(text[colon + 1:])
        except ValueError:
            raise ValueError(f"{where}: the weight {text[colon + 1:]!r} after ':' is not a "
                             f"number; {expected}.") from None
        text = text[:colon]
    head, at, eval_split = text.partition("@")
    parts = head.split("/")
    if not head or (at and not eval_split) or len(parts) > 3 or not all(parts):
        raise ValueError(f"{where}: {expected}.")
    weight = 1.0 if weight is None else float(weight)
    if not weight > 0:
        raise ValueError(f"{where}: weight must be > 0; found {weight}.")
    builder, config, split = ([None] + parts + [None] if len(parts) == 1 else parts + [None])[:3]
    return Source(builder=builder, config=config, split=split, eval_split=eval_split or None,
                  weight=weight, index=index)


def _weight_colon(text: str) -> int:
    """Position of the ':' before a weight (-1 if none); colons inside TFDS split slices
    (`train[:1000]`) are not one."""
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {"]": 1, "[": -1}.get(text[i], 0)
        if text[i] == ":" and depth == 0:
            return i
    return -1


def _entries(sources: Any) -> list[tuple[str, float | None]]:
    """data.sources as (entry, weight or None): a `+`-joined string (the command-line form), a
    tuple of strings, or of (entry, weight) pairs (what older configs and the recipe write)."""
    if isinstance(sources, str):
        sources = [sources]
    entries: list[tuple[str, float | None]] = []
    for entry in sources or ():
        if isinstance(entry, str):
            entries += [(part, None) for part in entry.strip().split("+")]
        elif (isinstance(entry, Sequence) and len(entry) == 2 and isinstance(entry[0], str)
              and isinstance(entry[1], int | float)):
            entries.append((entry[0], float(entry[1])))
        else:
            raise ValueError(f"data.sources entry {entry!r}: expected a string {SOURCE_SYNTAX} "
                             "or an (entry, weight) pair.")
    if not entries:
        raise ValueError(f"data.sources is empty; expected {SOURCE_SYNTAX} entries joined by "
                         "'+', e.g. lrs3/en/pretrain+lrs3/en/train+mtedx/es_video:0.5.")
    return entries


def parse_sources(sources: Any) -> list[tuple[str, float]]:
    """data.sources -> [(entry without its weight, weight), ...], in order."""
    return [(s.spec, s.weight) for s in (parse_source(e, w, i)
                                         for i, (e, w) in enumerate(_entries(sources)))]


def mixture(data_cfg: Any) -> list[Source]:
    """The configured sources, in data.sources order, with data.builder / data.split /
    data.eval_split filled in where an entry names none."""
    builder, split = str(_get(data_cfg, "builder")), str(_get(data_cfg, "split"))
    eval_split = str(_get(data_cfg, "eval_split"))
    out = []
    for i, (entry, weight) in enumerate(_entries(_get(data_cfg, "sources"))):
        src = parse_source(entry, weight, i)
        out.append(dataclasses.replace(src, builder=src.builder or builder,
                                       split=src.split or split,
                                       eval_split=src.eval_split or eval_split))
    labels = [s.label(TRAIN) for s in out]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise ValueError(f"data.sources names {', '.join(twice)} more than once; give one entry "
                         "a weight instead (BUILDER/CONFIG/SPLIT:WEIGHT).")
    return out


def eval_sources(data_cfg: Any, split: str = EVAL) -> list[Source]:
    """The sources an evaluation over `split` reads, one per distinct dataset (LRS3's pretrain
    and train entries share one validation split): open each alone with
    `make_loader(data_cfg, split, train=False, source=s.index)` and name its metrics
    `s.label(split)`."""
    return distinct(mixture(data_cfg), split)


def distinct(sources: Sequence[Source], split: str) -> list[Source]:
    """The first source of each dataset that `split` reads, in order."""
    seen: dict[str, Source] = {}
    for src in sources:
        seen.setdefault(src.label(split), src)
    return list(seen.values())
