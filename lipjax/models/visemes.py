"""Viseme groups of the phone inventory: the phones that lips cannot tell apart.

Phones whose viseme class sequence (lipjax/synth/visemes.py) is the same look the same on screen
(p/b/m), so the best a visual model can say about a frame is its group. Stage 2 can give the
LMDecoder a share of its sentences at that resolution (config loss.viseme_mix): the phone
sequence as `viseme_sequence` (each phone's group, silence and word boundaries dropped, runs
merged), each group embedded as the mean of its units' embeddings (`mean_matrix` @ memory), so
the decoder learns to resolve what lips leave open with the language's knowledge. Stage 3
(config model.memory_units="visemes") reads the same group means, weighted by the unit head's
posteriors summed over each group, one input per run of frames (`runs`, `run_means`), so both
stages feed the decoder one kind of input; with a CTC unit head (model.memory_units=
"visemes_ctc") blank and word-boundary frames emit nothing (`ctc_runs`). Blank/silence and the
word boundary form groups of their own; so does an inventory phone with no viseme class, with a
warning naming it (its language's package should declare one, `Language.phones`). The groups
follow the inventory, which grows when a language package registers phones.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from lipjax.units import phonemes

log = logging.getLogger(__name__)


def group_ids() -> tuple[np.ndarray, tuple[str, ...]]:
    """(unit id → group index (K,) int32, group names): the phone inventory's viseme groups."""
    return _group_ids(_phones())


def _phones() -> tuple[str, ...]:
    return tuple(phonemes.load_inventory().phones)


@functools.cache
def _group_ids(phones: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    from lipjax.synth import visemes

    names: dict[str, int] = {}
    ids = np.zeros(len(phones), np.int32)
    unclassed = []
    for unit, phone in enumerate(phones):
        if unit == phonemes.BLANK_ID:
            name = "silence"
        elif phone == phonemes.WORD:
            name = f"<{phone}>"
        else:
            try:
                name = "+".join(visemes.classes(phone))
            except KeyError:
                unclassed.append(phone)
                name = f"<{phone}>"
        ids[unit] = names.setdefault(name, len(names))
    if unclassed:
        log.warning("%d phones of the inventory have no viseme class and form groups of their "
                    "own in viseme reads: %s. Declare what each looks like in its language's "
                    "package (Language(phones={...})).", len(unclassed), ", ".join(unclassed))
    return ids, tuple(names)


def num_groups() -> int:
    return len(group_ids()[1])


def membership() -> np.ndarray:
    """(K, G) float32 one-hot: unit k belongs to group g. Posteriors @ membership = group
    posteriors."""
    ids, names = group_ids()
    return np.eye(len(names), dtype=np.float32)[ids]


def mean_matrix() -> np.ndarray:
    """(G, K) float32: row g averages the units of group g (mean_matrix @ memory = the group
    means of the K × D memory)."""
    member = membership().T
    return member / member.sum(axis=1, keepdims=True)


SILENCE_GROUP = 0  # the blank/silence unit's group (`group_ids` numbers it first)


def shown_groups() -> np.ndarray:
    """Ids of the groups lips show: all but silence and the word boundary (which
    `viseme_sequence` drops)."""
    return _shown_groups(_phones())


@functools.cache
def _shown_groups(phones: tuple[str, ...]) -> np.ndarray:
    _, names = _group_ids(phones)
    hidden = (SILENCE_GROUP, names.index(f"<{phonemes.WORD}>"))
    return np.asarray([g for g in range(len(names)) if g not in hidden], np.int32)


def shown_mask() -> np.ndarray:
    """(G,) bool: the groups lips show (`shown_groups`)."""
    mask = np.zeros(num_groups(), bool)
    mask[shown_groups()] = True
    return mask


def runs(groups: jax.Array, valid: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Runs of one group along axis 1 of (B, T) `groups`, over the `valid` positions only (a run
    continues across invalid ones, as lips show p-silence-b as one closure): (run index of each
    position (B, T), T where invalid; number of runs (B,))."""
    t = groups.shape[1]
    pos = jnp.arange(t)[None]
    last = lax.cummax(jnp.where(valid, pos, -1), axis=1)  # last valid position <= t
    before = jnp.concatenate([jnp.full_like(last[:, :1], -1), last[:, :-1]], axis=1)
    prev = jnp.take_along_axis(groups, jnp.maximum(before, 0), axis=1)
    start = valid & ((before < 0) | (groups != prev))
    index = jnp.cumsum(start, axis=1) - 1
    return jnp.where(valid, index, t), start.sum(axis=1)


def ctc_runs(scores: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Runs (as `runs`) of the frames of a CTC unit head, from their group scores (B, T, G)
    (log-posteriors or probabilities, any monotonic scale), read as stage 2's viseme sequences
    (`viseme_sequence`) are formed: a frame whose best group is silence (the CTC blank: no new
    unit) or the word boundary emits nothing, and runs of one group join across such frames,
    so `b <blank> m` and `p | b` give one bilabial as in stage 2, where CTC's own collapse
    would keep two units. A frame is counted under its best shown group; a clip that emits
    nothing keeps every frame under its best shown group (every clip gives the decoder an
    input)."""
    shown = jnp.asarray(shown_mask())
    emits = mask & shown[jnp.argmax(scores, axis=-1)]
    groups = jnp.argmax(jnp.where(shown, scores, -jnp.inf), axis=-1)
    valid = jnp.where(emits.any(axis=1, keepdims=True), emits, mask)
    return runs(groups, valid)


def viseme_sequence(units: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, L) unit ids → (group ids (B, L) left-aligned, mask): each unit's viseme group,
    silence and word boundaries dropped, runs of one group merged (metrics.to_visemes in
    ids): the phone sequence as lips show it."""
    groups = jnp.asarray(group_ids()[0])[units]
    valid = mask & jnp.isin(groups, shown_groups())
    index, count = runs(groups, valid)
    b, t = groups.shape
    out = jnp.zeros_like(groups).at[jnp.arange(b)[:, None], index].set(groups, mode="drop")
    return out, jnp.arange(t)[None] < count[:, None]


def run_means(x: jax.Array, index: jax.Array, count: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(B, T, D) per-position vectors → (B, T, D) the mean over each run (`runs`), left-aligned,
    zeros after the last run; and the runs' mask (B, T)."""
    b, t = index.shape
    rows = jnp.arange(b)[:, None]
    sums = jnp.zeros(x.shape, jnp.float32).at[rows, index].add(x.astype(jnp.float32),
                                                               mode="drop")
    counts = jnp.zeros((b, t), jnp.float32).at[rows, index].add(1.0, mode="drop")
    mask = jnp.arange(t)[None] < count[:, None]
    return (sums / jnp.maximum(counts, 1.0)[..., None]).astype(x.dtype), mask


def corrupt(groups: jax.Array, mask: jax.Array, rate: float, key: jax.Array,
            ) -> tuple[jax.Array, jax.Array]:
    """Viseme sequences (`viseme_sequence`) with a lip reader's kinds of error: each group is
    replaced by a random one, dropped, or followed by a random extra one, each with
    probability rate / 3, left-aligned again (a sequence that grows past the width loses its
    tail). Stage 2 (config loss.viseme_noise) trains on them so that the LMDecoder reads
    the imperfect sequences stage 1's unit head gives in stage 3."""
    choices = jnp.asarray(shown_groups())
    k_kind, k_sub, k_ins = jax.random.split(key, 3)
    b, t = groups.shape
    u, p = jax.random.uniform(k_kind, (b, t)), rate / 3  # each kind with probability p
    substitute, delete, insert = ((u >= i * p) & (u < (i + 1) * p) for i in range(3))
    random_group = lambda k: choices[jax.random.randint(k, (b, t), 0, choices.shape[0])]
    kept = mask & ~(delete & (jnp.arange(t)[None] > 0))  # never an empty sequence
    extra = kept & insert
    width = kept.astype(jnp.int32) + extra.astype(jnp.int32)  # tokens each position emits
    start = jnp.cumsum(width, axis=1) - width
    rows = jnp.arange(b)[:, None]
    out = jnp.zeros_like(groups)
    out = out.at[rows, jnp.where(kept, start, t)].set(
        jnp.where(substitute, random_group(k_sub), groups), mode="drop")
    out = out.at[rows, jnp.where(extra, start + 1, t)].set(random_group(k_ins), mode="drop")
    return out, jnp.arange(t)[None] < width.sum(axis=1, keepdims=True)
