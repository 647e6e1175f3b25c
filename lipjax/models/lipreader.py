"""Lip readers: the stage-1 visual unit model and the stage-3 composed lip reader.

`VisualEncoder` (frontend → visual encoder) turns a clip into visual states; both models hold
one, so stage 3 copies stage 1's as one sub-tree (`visual`).

`VisualUnitModel` (stage 1): visual encoder → shared-unit head + language-ID head.

`LipReader` (stage 3, Kim et al. ICCV 2023): the visual states read the chosen language's
LMDecoder memory (`MemoryRead`: keys = values = the memory's unit embeddings), so a frame is
re-expressed in the units the LMDecoder was trained on; the read feeds that LMDecoder's memory
encoder, CTC head and decoder. Configs of this one model give the recipe's methods:
memory read by learnt attention or by the unit head's posteriors (the method), no memory
read with the LMDecoder's weights (ablation c), no memory read with a fresh decoder
(baseline b with a stage-1 encoder, baseline a from scratch).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax import languages
from lipjax.models import visemes as viseme_groups
from lipjax.models.conformer import Encoder
from lipjax.models.frontend import Frontend
from lipjax.models.language_id import LanguageID
from lipjax.models.layers import Dtype
from lipjax.models.lmdecoder import LanguageDecoders, language_positions, select
from lipjax.models.unit_head import UnitHead

ADDRESSING = ("attention", "posterior")


class VisualEncoder(nnx.Module):
    """Clip (B, T, H, W) → visual states (B, T, D): the part stage 1 teaches and stage 3 reuses."""

    def __init__(self, frontend: Frontend, encoder: Encoder) -> None:
        self.frontend, self.encoder = frontend, encoder

    def __call__(self, video: jax.Array, mask: jax.Array) -> jax.Array:
        return self.encoder(self.frontend(video, mask), mask)


class VisualUnitModel(nnx.Module):
    def __init__(self, visual: VisualEncoder, unit_head: UnitHead,
                 lid: LanguageID | None) -> None:
        self.visual, self.unit_head = visual, unit_head
        self.lid = nnx.data(lid)

    def __call__(self, video: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
        states = self.visual(video, mask)
        out = {"states": states, "unit_logits": self.unit_head(states)}
        if self.lid is not None:
            out["lid_logits"] = self.lid(states, mask)
        return out


class MemoryRead(nnx.Module):
    """Visual states read a K × D memory whose keys = values = the unit embeddings.

    The read is a mixture of unit embeddings (per head, a convex combination of the heads'
    slices of the embeddings), i.e. it lies in the very space the LMDecoder's memory encoder was
    trained on in stage 2, so the stage-2 weights apply to it unchanged. Addressing:
    - "attention": learnt cross-attention, queries from the visual states, keys projected from
      the memory;
    - "posterior": one head whose weights are the stage-1 unit head's softmax over the K units
      (the unit vocabulary is the memory's), so a frame reads the embedding of the unit it
      shows.
    `temperature` (posterior only) divides the unit head's logits before the softmax: below 1 the
    read moves toward the one embedding of the most likely unit (or group), the hard input
    stage 2 trained the LMDecoder on; the recipe chooses it on validation.
    `residual` adds a projection of the visual states to the read, initialised to the states
    scaled by 1/√dim (the scale of a unit embedding, which the memory encoder multiplies by
    √dim): training starts from the plain lip reader plus the read, so a read that is still
    uninformative cannot block learning (a randomly initialised projection let a tiny model
    fail to memorise 8 clips for 2 of 4 seeds, tests/test_overfit.py).
    """

    def __init__(self, dim: int, heads: int, *, addressing: str = "attention",
                 residual: bool = True, temperature: float = 1.0, dtype: Dtype = jnp.float32,
                 rngs: nnx.Rngs) -> None:
        if addressing not in ADDRESSING:
            raise ValueError(f"config model.memory_addressing: expected one of {ADDRESSING}, "
                             f"found {addressing!r}")
        if dim % heads:
            raise ValueError(f"config model.memory_heads: dim {dim} is not divisible by "
                             f"{heads} heads")
        if temperature <= 0:
            raise ValueError(f"config model.memory_temperature: expected > 0, found "
                             f"{temperature}")
        self.addressing = addressing
        self.temperature = temperature
        self.heads = heads if addressing == "attention" else 1
        self.head_dim = dim // self.heads
        lin = lambda **kw: nnx.Linear(dim, dim, dtype=dtype, rngs=rngs, **kw)
        self.query = nnx.data(lin() if addressing == "attention" else None)
        self.key = nnx.data(lin() if addressing == "attention" else None)
        identity = lambda key, shape, dtype=jnp.float32: jnp.eye(dim, dtype=dtype) / dim ** 0.5
        self.visual = nnx.data(lin(kernel_init=identity) if residual else None)

    def weights(self, states: jax.Array, memory: jax.Array,
                unit_logits: jax.Array | None = None) -> jax.Array:
        """(B, heads, T, K) float32 weights of each frame over the K memory slots."""
        if self.addressing == "posterior":
            if unit_logits is None:
                raise ValueError("MemoryRead(addressing='posterior') needs the unit head's "
                                 "logits")
            logits = unit_logits.astype(jnp.float32) / self.temperature
            return jax.nn.softmax(logits, axis=-1)[:, None]
        split = lambda x: x.reshape(*x.shape[:-1], self.heads, self.head_dim)
        q = split(self.query(states)).astype(jnp.float32)
        k = split(self.key(memory.astype(states.dtype))).astype(jnp.float32)
        scores = jnp.einsum("bthd,khd->bhtk", q, k) * self.head_dim ** -0.5
        return jax.nn.softmax(scores, axis=-1)

    def __call__(self, states: jax.Array, memory: jax.Array,
                 unit_logits: jax.Array | None = None) -> jax.Array:
        return self.read(self.weights(states, memory, unit_logits), states, memory)

    def read(self, w: jax.Array, states: jax.Array, memory: jax.Array) -> jax.Array:
        """The read for given `weights` (B, heads, T, K), plus the visual residual."""
        values = memory.astype(jnp.float32).reshape(memory.shape[0], self.heads, self.head_dim)
        read = jnp.einsum("bhtk,khd->bthd", w, values).reshape(states.shape)
        read = read.astype(states.dtype)
        return read if self.visual is None else read + self.visual(states)


MEMORY_UNITS = ("units", "visemes", "visemes_ctc")


class LipReader(nnx.Module):
    """`memory_units`: "units" reads the K unit slots at every frame; "visemes" reads the
    LMDecoder's viseme group means (`LMDecoder.viseme_memory`; posterior weights summed over
    each group) and gives the decoder one input per run of frames reading one group, the form
    of the viseme sequences stage 2 taught it (config loss.viseme_mix).

    "visemes_ctc" is the viseme read for a unit head trained with CTC (stage 1
    `phoneme_targets=sequence`, what a corpus without frame labels allows). Its posteriors are
    peaky: most frames are blank, meaning "no new unit here", not silence, and a few frames
    spike on a unit or on the word boundary `|` that CTC targets contain. Stage 2's viseme
    sequences (`visemes.viseme_sequence`) have neither blanks nor word boundaries and merge
    every run of one group, across a dropped boundary too. So a frame whose most probable group
    is blank or the word boundary gives the decoder no input; runs of one group join across
    such frames (CTC would keep `b <blank> m` as two units, stage 2 as one bilabial); and each
    frame reads the group posteriors renormalised over the groups lips show, since stage 2 never
    fed the decoder the blank's or the boundary's slot."""

    def __init__(self, visual: VisualEncoder, decoders: LanguageDecoders,
                 memory_read: MemoryRead | None, unit_head: UnitHead | None = None,
                 memory_units: str = "units", lid: LanguageID | None = None) -> None:
        if memory_read is not None and memory_read.addressing == "posterior" and not unit_head:
            raise ValueError("posterior memory addressing needs the stage-1 unit head")
        if memory_units not in MEMORY_UNITS:
            raise ValueError(f"config model.memory_units: expected one of {MEMORY_UNITS}, "
                             f"found {memory_units!r}")
        self.visual, self.decoders = visual, decoders
        self.memory_read = nnx.data(memory_read)
        self.unit_head = nnx.data(unit_head)
        self.memory_units = memory_units
        self.lid = nnx.data(lid)

    def _read_inputs(self, states: jax.Array, code: str,
                     ) -> tuple[jax.Array, jax.Array | None, jax.Array | None]:
        """(memory, logits the read's weights come from, group log-posteriors) for language
        `code`: unit slots and the unit logits; or viseme groups with the posteriors' group
        sums as logits (with "visemes_ctc" renormalised over the groups lips show), and the
        group log-posteriors themselves (blank and word boundary included), or None without a
        unit head."""
        logits = self.unit_head(states) if self.unit_head is not None else None
        lm = self.decoders.lmdecoders[code]
        if self.memory_units == "units":
            return lm.memory(), logits, None
        groups = None
        if logits is not None:
            probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
            groups = jnp.log(probs @ jnp.asarray(viseme_groups.membership()) + 1e-30)
            logits = groups
            if self.memory_units == "visemes_ctc":
                logits = jnp.where(viseme_groups.shown_mask(), groups, -jnp.inf)
        return lm.viseme_memory(), logits, groups

    def read_memory(self, states: jax.Array, code: str,
                    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Visual states → (language `code`'s memory read (the LMDecoder's input space), the
        read's weights (B, heads, T, slots), each frame's group scores (B, T, G): the group
        log-posteriors where there are any, else the weights' mean over heads)."""
        memory, logits, groups = self._read_inputs(states, code)
        weights = self.memory_read.weights(states, memory, logits)
        scores = weights.mean(axis=1) if groups is None else groups
        return self.memory_read.read(weights, states, memory), weights, scores

    def encode(self, video: jax.Array, mask: jax.Array, language: jax.Array,
               ) -> tuple[jax.Array, jax.Array]:
        """Clip → (the chosen LMDecoder's memory-encoder states (B, T, D), their mask)."""
        return self.encode_states(self.visual(video, mask), mask, language)

    def language_logits(self, states: jax.Array, mask: jax.Array) -> jax.Array:
        """(B, L) float32 language-ID logits over this reader's languages (decoders.codes,
        in order) from the visual states: the stage-1 head scores every registered language,
        and only those with a decoder can be chosen."""
        if self.lid is None:
            raise ValueError("language_logits: this lip reader has no language-ID head (it is "
                             "built for several languages, config model.languages)")
        index = jnp.asarray([languages.index(c) for c in self.decoders.codes], jnp.int32)
        return self.lid(states, mask)[:, index]

    def encode_states(self, states: jax.Array, mask: jax.Array, language: jax.Array,
                      ) -> tuple[jax.Array, jax.Array]:
        """Visual states → (language `language`'s memory-encoder states, their mask): the
        memory read and the LMDecoder encoder, so that several languages can be tried on one
        pass of the visual encoder."""
        if self.memory_read is not None:
            codes = self.decoders.codes
            position = None if len(codes) == 1 else language_positions(language, codes)
            reads, weights, scores = zip(*(self.read_memory(states, c) for c in codes),
                                         strict=True)
            states = select(list(reads), position)
            if self.memory_units == "visemes":
                # As stage 2's viseme sequences: one input per run of frames that read one
                # group most (silence dropped), the mean of the run's reads.
                index, count = self._runs(select(list(weights), position), mask)
                states, mask = viseme_groups.run_means(states, index, count)
            elif self.memory_units == "visemes_ctc":
                # The CTC form of the same: blank and word-boundary frames emit nothing.
                index, count = viseme_groups.ctc_runs(select(list(scores), position), mask)
                states, mask = viseme_groups.run_means(states, index, count)
        return self.decoders.encode(states, mask, language), mask

    @staticmethod
    def _runs(weights: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(run index (B, T), runs (B,)) of the frames' most-read viseme group; a clip read as
        silence throughout keeps its silent frames (every clip gives the decoder an input)."""
        groups = jnp.argmax(weights.mean(axis=1), axis=-1)
        valid = mask & (groups != viseme_groups.SILENCE_GROUP)
        valid = jnp.where(valid.any(axis=1, keepdims=True), valid, mask)
        return viseme_groups.runs(groups, valid)

    def memory_attention(self, video: jax.Array, mask: jax.Array, code: str) -> jax.Array:
        """(B, heads, T, slots): how each frame reads language `code`'s memory, over its K
        unit slots or, with memory_units="visemes", its viseme groups (the weights the
        forward pass uses)."""
        if self.memory_read is None:
            raise ValueError("memory_attention: this lip reader has no memory "
                             "(config model.memory_addressing='none')")
        states = self.visual(video, mask)
        memory, logits, _ = self._read_inputs(states, code)
        return self.memory_read.weights(states, memory, logits)
