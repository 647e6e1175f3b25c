"""Train and eval modes, with frozen sub-trees kept in eval mode while the rest trains.

`optim.freeze` (lipjax/train/schedules.py) zeroes the gradients of the listed sub-trees; that
alone would still re-estimate their BatchNorm running statistics on every batch and keep their
dropout on. A frozen part must compute as it did when it was loaded: here it runs in eval mode
(BatchNorm reads and keeps its running statistics; dropout off) while the rest trains.
"""

from __future__ import annotations

from collections.abc import Sequence

from flax import nnx


def submodule(model: nnx.Module, prefix: str) -> nnx.Module:
    """The module at a dotted attribute path such as "visual" or "decoders.lmdecoders.it"."""
    node: object = model
    walked: list[str] = []
    for name in prefix.split("."):
        walked.append(name)
        if isinstance(node, dict) and name in node:
            node = node[name]
        elif isinstance(node, list | tuple) and name.isdigit() and int(name) < len(node):
            node = node[int(name)]
        elif hasattr(node, name):
            node = getattr(node, name)
        else:
            children = sorted(k for k, _ in nnx.iter_children(node)) if isinstance(
                node, nnx.Module) else sorted(map(str, node)) if isinstance(node, dict) else []
            raise ValueError(f"config optim.freeze entry {prefix!r}: the model has no "
                             f"{'.'.join(walked)!r}; the level above has {children}")
    return node


def frozen_modules(model: nnx.Module, freeze: Sequence[str]) -> list[nnx.Module]:
    """The modules named by config optim.freeze. A part the model was built without (an
    optional attribute left None, e.g. the unit head of a model that reads no posteriors) has
    nothing to freeze; a name the model does not have, or that is not a module, is an error."""
    found = []
    for prefix in freeze:
        node = submodule(model, prefix)
        if node is None:
            continue
        if not isinstance(node, nnx.Module):
            raise ValueError(f"config optim.freeze entry {prefix!r} names a "
                             f"{type(node).__name__}, not a module (freeze whole modules)")
        found.append(node)
    return found


def set_train_mode(model: nnx.Module, freeze: Sequence[str] = ()) -> None:
    """Train mode for the model, eval mode for its frozen sub-trees."""
    model.train()
    for module in frozen_modules(model, freeze):
        module.eval()
