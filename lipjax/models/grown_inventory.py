"""A stage-1 unit head read by a model whose phone inventory has grown since it was trained.

A language package adds phones after the inventory's (`lipjax.languages.Language.phones`), so a
stage-1 run trained before the language was registered has a unit head over fewer phones than
the stage-3 model that reads it with posterior addressing. Phones are only ever appended, so the
run's N classes are the first N phones of today's inventory; each phone after them is read
through the run's phone that looks most like it (`nearest`): one of the same viseme class
sequence, preferring the same letters without diacritics, then the same first letter, then the
most frequent (the inventory lists them most frequent first). The head is widened by copying that
phone's weights, with the copies' and the source's biases lowered by log(copies + 1): every old
phone keeps its posterior, each source's mass is shared evenly with the new phones it stands for.
A new phone with no phone of its class in the run is an error that names the ways out.
"""

from __future__ import annotations

import logging
from typing import Any

import jax.numpy as jnp
import numpy as np

from lipjax.synth import visemes
from lipjax.units import phonemes

log = logging.getLogger(__name__)


class GrownInventoryError(ValueError):
    """The run's unit head cannot stand for the phones added since it was trained."""


def nearest(phone: str, known: list[str]) -> str | None:
    """The phone of `known` (most frequent first) that `phone` is read as, or None when none
    shares its viseme class sequence."""
    classes = visemes.classes(phone)
    same = [p for p in known if p not in (phonemes.BLANK, phonemes.WORD)
            and visemes.classes(p) == classes]
    if not same:
        return None
    base = visemes.letters(phone)
    for keep in (lambda p: visemes.letters(p) == base,
                 lambda p: visemes.letters(p)[:1] == base[:1]):
        found = [p for p in same if keep(p)]
        if found:
            return found[0]
    return same[0]


def mapping(run_size: int, where: str) -> dict[int, int]:
    """{new unit id: the run's unit id read for it} for every phone of today's inventory after
    the run's `run_size`; errors that say what grew and the ways out when one has no stand-in."""
    inventory = phonemes.load_inventory()
    if run_size > inventory.size:
        raise GrownInventoryError(
                f"{where}: the stage-1 run's unit head has {run_size} phone classes, this "
                f"process's inventory {inventory.size}: the run was trained with language "
                f"packages that are not imported now. Run this stage through the package of "
                f"the language the run added (python -m data_builders.<package> train ...).")
    if run_size > inventory.base_size:
        log.warning("%s: the stage-1 run knows %d phones beyond lipjax/units/ipa_inventory.txt; "
                    "taken to be %s, the phones the packages imported now declare first", where,
                    run_size - inventory.base_size,
                    " ".join(inventory.phones[inventory.base_size:run_size]))
    known = inventory.phones[:run_size]
    found = {new: nearest(inventory.phones[new], known) for new in range(run_size,
                                                                         inventory.size)}
    added = " ".join(inventory.phones[run_size:])
    missing = [inventory.phones[new] for new, source in found.items() if source is None]
    if missing:
        raise GrownInventoryError(
                f"{where}: the phone inventory grew from {run_size} to {inventory.size} phones "
                f"since this stage-1 run was trained ({added}, declared by language packages), "
                f"and the run has no phone of the viseme class of {' '.join(missing)} to read "
                f"them through. Two ways out: retrain stage 1 with the language's package "
                f"imported (python -m data_builders.<package> train --config "
                f"configs/units_pretrain.py:...), so that its unit head knows them; or declare "
                f"each as looking like a phone the run knows, in the package's "
                f"Language(phones={{{missing[0]!r}: '<a phone of the inventory file>'}}).")
    return {new: known.index(source) for new, source in found.items()}


def grow(kernel: np.ndarray, bias: np.ndarray, size: int, where: str
         ) -> tuple[np.ndarray, np.ndarray]:
    """A unit head's (D, N) kernel and (N,) bias widened to `size` classes (`mapping`)."""
    run_size = bias.shape[0]
    stands_for = mapping(run_size, where)
    kernel = np.concatenate([kernel, kernel[:, list(stands_for.values())]], axis=1)
    bias = np.concatenate([bias, bias[list(stands_for.values())]]).astype(np.float64)
    shares = np.bincount(list(stands_for.values()), minlength=run_size) + 1.0
    source_of = np.concatenate([np.arange(run_size), list(stands_for.values())]).astype(int)
    bias -= np.log(shares[source_of])
    inventory = phonemes.load_inventory()
    log.info("%s: stage-1 unit head of %d phones read by an inventory of %d: %s", where,
             run_size, size, ", ".join(f"{inventory.phones[n]} as {inventory.phones[s]}"
                                       for n, s in stands_for.items()))
    assert kernel.shape[1] == size, (kernel.shape, size)
    return kernel, bias.astype(np.float32)


def _leaf(value: Any) -> np.ndarray:
    value = value["value"] if isinstance(value, dict) and set(value) == {"value"} else value
    return np.asarray(value)


def load_unit_head(head: Any, restored: dict, where: str) -> int:
    """Copies a stage-1 run's unit head (its checkpoint's "unit_head" tree) into `head` (a
    `UnitHead`), widened when the inventory grew (`grow`); returns the number of arrays."""
    kernel, bias = _leaf(restored["proj"]["kernel"]), _leaf(restored["proj"]["bias"])
    ours = head.proj.kernel.value.shape
    if kernel.shape[0] != ours[0]:
        raise ValueError(f"{where}: the stage-1 unit head reads {kernel.shape[0]}-d states, "
                         f"this model's {ours[0]} (the model variant differs from stage 1's)")
    if kernel.shape[1] < ours[1] and ours[1] == phonemes.load_inventory().size:
        kernel, bias = grow(kernel, bias, ours[1], where)
    elif kernel.shape[1] != ours[1]:
        raise ValueError(f"{where}: the stage-1 unit head has {kernel.shape[1]} classes, this "
                         f"model's {ours[1]} (config model.unit_type or model.unit_vocab differs "
                         f"from stage 1's)")
    head.proj.kernel.value = jnp.asarray(kernel, head.proj.kernel.value.dtype)
    head.proj.bias.value = jnp.asarray(bias, head.proj.bias.value.dtype)
    return 2
