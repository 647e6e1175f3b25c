"""LMDecoder (Kim et al., ICCV 2023): a language-specific decoder trained on audio-text only.

Per language: a memory of K slots whose keys = values = the unit embeddings (K = unit
vocabulary: phoneme inventory or k-means units), a Transformer memory encoder over embedded
unit sequences, an autoregressive Transformer decoder over that language's SentencePiece vocab
(PAD 0, UNK 1, BOS 2, EOS 3) and a CTC text head on the memory-encoder output (blank = PAD,
which never occurs in a target). In stage 2 the input is the unit sequence of the audio; in
stage 3 it is the visual states after they have attended over the memory (lipreader.py).

`LanguageDecoders` holds one LMDecoder per language (`decoders.lmdecoders[code]`, the
checkpoint sub-tree that fine-tuning copies) and routes each example to its language's
decoder. A batch of one language (the usual case: stage 2 and fine-tuning train one
language) runs one decoder; a mixed batch runs every decoder and keeps, per example, its own
language's output (`jnp.where`), which costs one decoder pass per language.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lipjax import languages
from lipjax.models import visemes as viseme_groups
from lipjax.models.conformer import Encoder
from lipjax.models.decoder import TransformerDecoder
from lipjax.models.layers import Dtype
from lipjax.schema import UNK


class LMDecoder(nnx.Module):
    def __init__(self, unit_vocab: int, text_vocab: int, dim: int, *, memory_layers: int = 4,
                 decoder_layers: int = 6, heads: int = 12, ffn: int = 3072,
                 dropout: float = 0.1, dtype: Dtype = jnp.float32, remat: bool = False,
                 rngs: nnx.Rngs) -> None:
        self.units = nnx.Embed(unit_vocab, dim, dtype=dtype, rngs=rngs)
        self.memory_encoder = nnx.data(
            Encoder(dim, dim, memory_layers, heads, ffn, kind="transformer", dropout=dropout,
                    dtype=dtype, remat=remat, rngs=rngs) if memory_layers > 0 else None)
        self.decoder = TransformerDecoder(text_vocab, dim, decoder_layers, heads, ffn,
                                          dropout=dropout, dtype=dtype, remat=remat, rngs=rngs)
        self.ctc = nnx.Linear(dim, text_vocab, dtype=dtype, rngs=rngs)
        self.text_vocab = text_vocab

    def memory(self) -> jax.Array:
        """The K × D memory: keys = values = the unit embedding table."""
        return self.units.embedding.value

    def viseme_memory(self) -> jax.Array:
        """The G × D group means of the memory (lipjax/models/visemes.py): what a unit looks
        like to lips. Phoneme memories only."""
        mean = jnp.asarray(viseme_groups.mean_matrix())
        if mean.shape[1] != self.units.num_embeddings:
            raise ValueError(f"viseme memory: the memory has {self.units.num_embeddings} slots "
                             f"but the phone inventory {mean.shape[1]} (viseme groups need "
                             "phoneme units)")
        return mean @ self.memory().astype(jnp.float32)

    def embed_units(self, units: jax.Array) -> jax.Array:
        return self.units(units)

    def embed_groups(self, groups: jax.Array) -> jax.Array:
        """Viseme group ids (lipjax/models/visemes.py) → their mean unit embeddings."""
        return self.viseme_memory()[groups].astype(self.units.embedding.value.dtype)

    def encode(self, x: jax.Array, mask: jax.Array | None) -> jax.Array:
        """(B, T, D) embedded units or memory-read visual states → memory-encoder states."""
        return x if self.memory_encoder is None else self.memory_encoder(x, mask)

    def ctc_logits(self, states: jax.Array) -> jax.Array:
        return self.ctc(states).astype(jnp.float32)

    def decode(self, tokens: jax.Array, states: jax.Array,
               mask: jax.Array | None) -> jax.Array:
        return self.decoder(tokens, states, mask)

    def init_cache(self, states: jax.Array, length: int) -> dict[str, jax.Array]:
        return self.decoder.init_cache(states, length)

    def step(self, cache: dict[str, jax.Array], tokens: jax.Array, position: jax.Array,
             mask: jax.Array | None) -> tuple[jax.Array, dict[str, jax.Array]]:
        return self.decoder.step(cache, tokens, position, mask)


def language_positions(language: jax.Array, codes: Sequence[str]) -> jax.Array:
    """Global LID indices (B,) → positions in `codes`; -1 for a language not in `codes`."""
    idx = jnp.asarray([languages.index(c) for c in codes], jnp.int32)
    hit = language[:, None] == idx[None]
    return jnp.where(hit.any(axis=1), jnp.argmax(hit, axis=1), -1)


def select(outputs: list[jax.Array], positions: jax.Array | None) -> jax.Array:
    """Per example b, outputs[positions[b]][b]. A row whose language has no decoder
    (position -1) is NaN in floating outputs, so that a loss or score over it is loudly wrong
    rather than quietly another language's (the loaders already refuse such clips)."""
    if positions is None:
        return outputs[0]
    out = outputs[0]
    for i, other in enumerate(outputs[1:], start=1):
        keep = (positions == i).reshape((-1,) + (1,) * (other.ndim - 1))
        out = jnp.where(keep, other, out)
    if jnp.issubdtype(out.dtype, jnp.floating):
        unknown = (positions < 0).reshape((-1,) + (1,) * (out.ndim - 1))
        out = jnp.where(unknown, jnp.nan, out)
    return out


# The logit of a text piece a language's tokenizer does not have, in outputs padded to the
# largest vocabulary: never chosen, no probability (finite, so that no NaN can arise).
ABSENT_PIECE = -1e9


def _known(tokens: jax.Array, decoder: LMDecoder) -> jax.Array:
    """`tokens` with the ids `decoder`'s tokenizer lacks as UNK. Every decoder reads every row
    and `select` keeps each row's own language's; another language's ids, beyond this
    decoder's embedding table, would give NaN activations that the discarded rows' zero
    gradients still multiply into NaN."""
    return jnp.where(tokens < decoder.text_vocab, tokens, UNK)


class LanguageDecoders(nnx.Module):
    """One LMDecoder per language code, selected by the batch's `language` (global LID index).

    Each LMDecoder has its own tokenizer's vocabulary (`make(code)`), so a stage-2 run of one
    language loads as it is; text outputs (`decode`, `ctc_logits`, `step`) are padded to the
    largest vocabulary with ABSENT_PIECE, and `vocab_mask` says which pieces each row's
    language has (a label-smoothed loss spreads its mass over those only)."""

    def __init__(self, codes: Sequence[str], make: Callable[[str], LMDecoder]) -> None:
        if not codes:
            raise ValueError("config model.languages: expected at least one language code")
        for c in codes:
            languages.get(c)
        self.codes = tuple(codes)
        self.lmdecoders = nnx.Dict({c: make(c) for c in self.codes})
        self.text_vocab = max(self.lmdecoders[c].text_vocab for c in self.codes)

    def _each(self, fn: Callable[[LMDecoder], jax.Array], language: jax.Array | None,
              text: bool = False) -> jax.Array:
        """`fn` of each example's language's decoder; `text`: outputs over the text
        vocabulary (last axis), padded to the largest."""
        pad = (lambda c, x: self._pad(c, x)) if text else (lambda c, x: x)
        if len(self.codes) == 1:
            return pad(self.codes[0], fn(self.lmdecoders[self.codes[0]]))
        pos = language_positions(language, self.codes)
        return select([pad(c, fn(self.lmdecoders[c])) for c in self.codes], pos)

    def _pad(self, code: str, logits: jax.Array) -> jax.Array:
        missing = self.text_vocab - logits.shape[-1]
        if not missing:
            return logits
        widths = [(0, 0)] * (logits.ndim - 1) + [(0, missing)]
        return jnp.pad(logits, widths, constant_values=ABSENT_PIECE)

    def vocab_mask(self, language: jax.Array | None) -> jax.Array | None:
        """(B, V) bool: the pieces each example's language has; None when every language has
        them all."""
        sizes = [self.lmdecoders[c].text_vocab for c in self.codes]
        if min(sizes) == self.text_vocab:
            return None
        has = jnp.arange(self.text_vocab)[None] < jnp.asarray(sizes)[:, None]  # (L, V)
        return has[jnp.maximum(language_positions(language, self.codes), 0)]

    def embed_units(self, units: jax.Array, language: jax.Array | None) -> jax.Array:
        return self._each(lambda m: m.embed_units(units), language)

    def embed_groups(self, groups: jax.Array, language: jax.Array | None) -> jax.Array:
        return self._each(lambda m: m.embed_groups(groups), language)

    def encode(self, x: jax.Array, mask: jax.Array | None, language: jax.Array | None,
               ) -> jax.Array:
        return self._each(lambda m: m.encode(x, mask), language)

    def ctc_logits(self, states: jax.Array, language: jax.Array | None) -> jax.Array:
        return self._each(lambda m: m.ctc_logits(states), language, text=True)

    def decode(self, tokens: jax.Array, states: jax.Array, mask: jax.Array | None,
               language: jax.Array | None) -> jax.Array:
        return self._each(lambda m: m.decode(_known(tokens, m), states, mask), language,
                          text=True)

    # Incremental decoding (lipjax/decoding.py's StepDecoder): one cache per language's
    # decoder, as `_each` runs every decoder; every cache entry has the batch on axis 1.
    def init_cache(self, states: jax.Array, mask: jax.Array | None,
                   language: jax.Array | None, length: int) -> dict[str, dict]:
        del mask, language  # every decoder gets a cache; `step` picks per example
        return {c: self.lmdecoders[c].init_cache(states, length) for c in self.codes}

    def step(self, cache: dict[str, dict], tokens: jax.Array, position: jax.Array,
             mask: jax.Array | None, language: jax.Array | None,
             ) -> tuple[jax.Array, dict[str, dict]]:
        """Logits (B, vocab) at `position` of `decode`, from the cache instead of the prefix."""
        steps = {c: self.lmdecoders[c].step(cache[c], _known(tokens, self.lmdecoders[c]),
                                            position, mask) for c in self.codes}
        logits = [self._pad(c, steps[c][0]) for c in self.codes]
        out = logits[0] if len(logits) == 1 else select(
            logits, language_positions(language, self.codes))
        return out, {c: steps[c][1] for c in self.codes}


class LMDecoderModel(nnx.Module):
    """Stage 2: unit sequence → memory encoder → decoder, per language."""

    def __init__(self, decoders: LanguageDecoders) -> None:
        self.decoders = decoders

    def encode(self, units: jax.Array, mask: jax.Array, language: jax.Array,
               as_visemes: jax.Array | None = None) -> jax.Array:
        """`as_visemes` (B, 1) bool: those rows hold viseme group ids, embedded as the groups'
        mean unit embeddings (`LMDecoder.embed_groups`)."""
        return encode_units(self.decoders, units, mask, language, as_visemes)


def encode_units(decoders: LanguageDecoders, units: jax.Array, mask: jax.Array,
                 language: jax.Array, as_visemes: jax.Array | None = None) -> jax.Array:
    """Stage 2's input path: unit ids (or viseme group ids, rows `as_visemes`) → memory
    embeddings → memory encoder; also stage 3's rehearsal of it (lipjax/data/rehearsal.py)."""
    x = decoders.embed_units(units, language)
    if as_visemes is not None:
        groups = jnp.where(as_visemes, units, 0)  # unit ids may exceed the group count
        x = jnp.where(as_visemes[..., None], decoders.embed_groups(groups, language), x)
    return decoders.encode(x, mask, language)
