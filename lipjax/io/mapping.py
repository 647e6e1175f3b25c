"""Checkpoint keys onto lipjax parameters: rules, layouts, and the errors that name both sides.

A `Rule` says which lipjax parameter (a path in `nnx.state(model).to_pure_dict()`) comes from
which checkpoint key and how the axes move (`LAYOUTS`: PyTorch keeps Linear weights as (out, in)
and convolutions as (out, in, *window); flax as (in, out) and (*window, in, out)). A key with
"{i}" fills a stacked parameter (models/stack.py: one leading layer axis) from layers 0..L-1.
`fill` applies the rules to a target tree of shapes and fails, naming the key and both shapes,
on a missing key, a shape that differs, or a checkpoint key no rule reads (unless ignored).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

# layout: (PyTorch array → lipjax array, lipjax shape → the PyTorch shape it comes from)
LAYOUTS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], Callable[[tuple], tuple]]] = {
    "vector": (lambda x: x, lambda s: s),
    "linear": (lambda x: x.T, lambda s: (s[1], s[0])),
    "conv1x1": (lambda x: x[:, :, 0].T, lambda s: (s[1], s[0], 1)),  # Conv1d, kernel 1
    "conv1d": (lambda x: x.transpose(2, 1, 0), lambda s: (s[2], s[1], s[0])),
    "conv2d": (lambda x: x.transpose(2, 3, 1, 0), lambda s: (s[3], s[2], s[0], s[1])),
    # Conv3d (out, 1, t, h, w) → frontend.Frontend's stem, time as input channels (h, w, t, out)
    "stem3d": (lambda x: x[:, 0].transpose(2, 3, 1, 0), lambda s: (s[3], 1, s[2], s[0], s[1])),
    "taps": (lambda x: x.reshape(-1), lambda s: (1, 1, s[0])),  # weight_norm(dim=2)'s g
}


@dataclasses.dataclass(frozen=True)
class Rule:
    path: str  # lipjax parameter, "/"-joined
    key: str  # checkpoint key; "{i}" for a stacked parameter
    layout: str = "vector"


def linear(path: str, key: str, layout: str = "linear") -> list[Rule]:
    return [Rule(f"{path}/kernel", f"{key}.weight", layout), Rule(f"{path}/bias", f"{key}.bias")]


def layer_norm(path: str, key: str) -> list[Rule]:
    return [Rule(f"{path}/scale", f"{key}.weight"), Rule(f"{path}/bias", f"{key}.bias")]


def batch_norm(path: str, key: str) -> list[Rule]:
    """models/layers.MaskedNorm("batch") ← BatchNorm{1,2,3}d (num_batches_tracked unused)."""
    names = (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"),
             ("var", "running_var"))
    return [Rule(f"{path}/norm/{ours}", f"{key}.{theirs}") for ours, theirs in names]


def _flat(tree: Any, prefix: tuple = ()) -> dict[str, tuple[tuple, Any]]:
    if isinstance(tree, dict):
        out: dict[str, tuple[tuple, Any]] = {}
        for k, v in tree.items():
            out.update(_flat(v, (*prefix, k)))
        return out
    return {"/".join(map(str, prefix)): (prefix, tree)}


def _set(tree: dict, path: tuple, value: Any) -> None:
    for k in path[:-1]:
        tree = tree[k]
    tree[path[-1]] = value


def _copy(tree: Any) -> Any:
    return {k: _copy(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


class Tensors:
    """A checkpoint's {key: array} that remembers which keys were read."""

    def __init__(self, arrays: dict[str, np.ndarray], source: str) -> None:
        self.arrays, self.source, self.used = arrays, source, set()

    def __contains__(self, key: str) -> bool:
        return key in self.arrays

    def shape(self, key: str) -> tuple:
        return tuple(self.arrays[key].shape)

    def take(self, key: str, shape: tuple, where: str) -> np.ndarray:
        if key not in self.arrays:
            raise KeyError(f"{self.source}: key {key!r} is missing (lipjax {where} reads it, "
                           f"expected shape {shape}); the checkpoint is not of this family or "
                           f"layout, or is incomplete")
        value = self.arrays[key]
        if tuple(value.shape) != tuple(shape):
            raise ValueError(f"{self.source}: key {key!r} has shape {tuple(value.shape)}, "
                             f"expected {tuple(shape)} (lipjax {where}); the checkpoint's "
                             f"architecture differs from the model config the importer built")
        self.used.add(key)
        return np.asarray(value, np.float32)

    def count(self, pattern: str) -> int:
        """How many layers a "{i}" key pattern has (0, 1, ... without gaps)."""
        regex = re.compile(re.escape(pattern).replace(r"\{i\}", r"(\d+)"))
        found = {int(m.group(1)) for k in self.arrays if (m := regex.fullmatch(k))}
        return max(found) + 1 if found else 0

    def unexpected(self, ignore: Iterable[str]) -> list[str]:
        regexes = [re.compile(p) for p in ignore]
        return [k for k in self.arrays if k not in self.used
                and not any(r.search(k) for r in regexes)]


def fill(target: dict, rules: Sequence[Rule], tensors: Tensors,
         ignore: Iterable[str] = ()) -> dict:
    """The lipjax parameter tree `target` (leaves with a .shape) filled from `tensors`."""
    flat = _flat(target)
    by_path = {r.path: r for r in rules}
    uncovered = sorted(set(flat) - set(by_path))
    if uncovered:
        raise ValueError(f"{tensors.source}: no checkpoint key maps to lipjax "
                         f"{', '.join(uncovered[:8])}: the model config has parts this "
                         f"family does not")
    out = _copy(target)
    for path, (keys, leaf) in flat.items():
        rule = by_path[path]
        to_lipjax, torch_shape = LAYOUTS[rule.layout]
        shape = tuple(leaf.shape)
        if "{i}" in rule.key:
            per_layer = torch_shape(shape[1:])
            value = np.stack([to_lipjax(tensors.take(rule.key.format(i=i), per_layer,
                                                     f"{path}[{i}]"))
                              for i in range(shape[0])])
        else:
            value = to_lipjax(tensors.take(rule.key, torch_shape(shape), path))
        _set(out, keys, np.ascontiguousarray(value, np.float32))
    extra = tensors.unexpected(ignore)
    if extra:
        shown = ", ".join(f"{k} {tensors.shape(k)}" for k in extra[:8])
        raise ValueError(f"{tensors.source}: {len(extra)} unexpected keys that no lipjax "
                         f"parameter reads: {shown}{' ...' if len(extra) > 8 else ''} (the "
                         f"checkpoint has parts this importer does not know)")
    return out


def resnet_rules(prefix: str, act: str) -> list[Rule]:
    """models/frontend.Frontend ← the ResNet-18 front end auto_avsr and AV-HuBERT share
    (Conv3d stem `frontend3D.{0,1,2}`, `trunk.layer{1-4}.{0,1}`)."""
    rules = [Rule("frontend/stem/kernel", f"{prefix}frontend3D.0.weight", "stem3d"),
             *batch_norm("frontend/stem_norm", f"{prefix}frontend3D.1")]
    if act == "prelu":
        rules.append(Rule("frontend/stem_act/prelu/weight", f"{prefix}frontend3D.2.weight"))
    for stage in range(4):
        for j in range(2):
            ours, theirs = f"frontend/blocks/{2 * stage + j}", f"{prefix}trunk.layer{stage + 1}.{j}"
            rules += [Rule(f"{ours}/conv1/kernel", f"{theirs}.conv1.weight", "conv2d"),
                      Rule(f"{ours}/conv2/kernel", f"{theirs}.conv2.weight", "conv2d"),
                      Rule(f"{ours}/down/kernel", f"{theirs}.downsample.0.weight", "conv2d"),
                      *batch_norm(f"{ours}/norm1", f"{theirs}.bn1"),
                      *batch_norm(f"{ours}/norm2", f"{theirs}.bn2"),
                      *batch_norm(f"{ours}/down_norm", f"{theirs}.downsample.1")]
            if act == "prelu":
                rules += [Rule(f"{ours}/act1/prelu/weight", f"{theirs}.relu1.weight"),
                          Rule(f"{ours}/act2/prelu/weight", f"{theirs}.relu2.weight")]
    return rules
