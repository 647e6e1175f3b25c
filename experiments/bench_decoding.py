"""Decoding time against output length, with the key/value cache and without it.

    python -m experiments.bench_decoding
    python -m experiments.bench_decoding --sizes small --lengths 8,16,32,64 --beam 4 --repeats 5

An LMDecoder (random weights, the config size's decoder) reads random encoder states of
`--frames` frames; its EOS logit is pushed down so that every hypothesis runs the full
`--lengths` steps and the time is that of the length asked for. Each row: greedy attention
decoding and the joint CTC/attention beam search (`--beam`, CTC weight 0.3), jitted, the median
of `--repeats` runs after one compile, once with `LanguageDecoders` itself (cached: each step
computes one position) and once with `LanguageDecoders.decode` (full prefix: each step re-runs
the decoder on the whole prefix buffer, the cost growing with the square of the length).
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from lipjax import decoding, languages
from lipjax.models import factory
from lipjax.schema import EOS

TEXT_VOCAB, UNIT_VOCAB = 1000, 100


def decoder_model(size: str) -> nnx.Module:
    """A one-language LMDecoder model of `size`, eval mode, whose EOS logit never wins."""
    model = factory.model_config(size, unit_vocab=UNIT_VOCAB, text_vocab=TEXT_VOCAB,
                                 languages=("en",), dropout=0.0)
    config = ml_collections.ConfigDict({"model": model, "train": {"dtype": "float32"}})
    m = factory.lmdecoder_model(config, nnx.Rngs(0))
    m.eval()
    head = m.decoders.lmdecoders["en"].decoder.logits
    head.bias[...] = head.bias[...].at[EOS].set(-1e4)
    return m


def time_decoding(m: nnx.Module, *, length: int, frames: int, batch: int, beam: int,
                  cached: bool, repeats: int) -> dict[str, float]:
    """Median seconds of greedy and beam decoding of `length` tokens (after a compile)."""
    rng = np.random.default_rng(0)
    units = jnp.asarray(rng.integers(0, UNIT_VOCAB, (batch, frames)))
    mask = jnp.ones((batch, frames), bool)
    lang = jnp.full((batch,), languages.index("en"), jnp.int32)

    @nnx.jit
    def greedy(m):
        states = m.encode(units, mask, lang)
        decoder = m.decoders if cached else m.decoders.decode
        return decoding.attention_greedy(decoder, states, mask, lang, max_len=length)

    @nnx.jit
    def beam_search(m):
        states = m.encode(units, mask, lang)
        decoder = m.decoders if cached else m.decoders.decode
        return decoding.beam_search(decoder, states, mask, lang,
                                    m.decoders.ctc_logits(states, lang), beam=beam,
                                    ctc_weight=0.3, length_penalty=0.0, max_len=length)

    out = {}
    for name, fn in (("greedy", greedy), ("beam", beam_search)):
        tokens, lengths = fn(m)[:2]
        if int(np.asarray(lengths).min()) != length:
            raise RuntimeError(f"{name}: hypotheses of {np.asarray(lengths)} tokens, expected "
                               f"{length} (EOS should never win)")
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fn(m))
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="small", help="Config sizes, comma-separated.")
    parser.add_argument("--lengths", default="8,16,32,64", help="Output lengths (tokens).")
    parser.add_argument("--frames", type=int, default=75, help="Encoder frames (25 per s).")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--beam", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {jax.devices()[0].device_kind}, "
          f"jax {jax.__version__}; batch {args.batch}, {args.frames} frames, beam {args.beam}, "
          f"median of {args.repeats}")
    print("| size | tokens | greedy full (ms) | greedy cached (ms) | speed-up | "
          "beam full (ms) | beam cached (ms) | speed-up |")
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes.split(","):
        m = decoder_model(size)
        for length in (int(n) for n in args.lengths.split(",")):
            kw = dict(length=length, frames=args.frames, batch=args.batch, beam=args.beam,
                      repeats=args.repeats)
            full = time_decoding(m, cached=False, **kw)
            cached = time_decoding(m, cached=True, **kw)
            cells = []
            for name in ("greedy", "beam"):
                cells += [f"{1e3 * full[name]:.1f}", f"{1e3 * cached[name]:.1f}",
                          f"{full[name] / cached[name]:.1f}×"]
            print(f"| {size} | {length} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
