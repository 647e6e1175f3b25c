"""Host-side evaluation metrics: WER / CER (jiwer, corpus level), unit error rate (PER) by edit
distance, viseme error rate (VER), language-ID accuracy.

Corpus-level rates (total edits / total reference length) rather than a mean of per-utterance
rates, as reported in the lip-reading literature. An empty reference contributes its
hypothesis length as insertions (jiwer rejects empty references).

Each rate is also available as its two sums (`Counts`: errors, total), which is what several
hosts exchange: each scores its own clips, the sums are added, and only then divided, so any
number of hosts gives the one-host number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jiwer
import numpy as np


def edit_distance(ref: Sequence, hyp: Sequence) -> int:
    """Levenshtein distance between two sequences (substitution = insertion = deletion = 1)."""
    ref, hyp = list(ref), list(hyp)
    row = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, start=1):
        prev, row = row, np.empty_like(row)
        row[0] = i
        for j, h in enumerate(hyp, start=1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (r != h))
    return int(row[-1])


class Counts(NamedTuple):
    """A corpus-level rate as its numerator and denominator (edits and reference length, or
    correct and total predictions for an accuracy). A denominator of 0 gives 1.0 if the
    numerator counted anything (a hypothesis for empty references) and 0.0 otherwise."""

    numerator: float
    denominator: float

    @property
    def rate(self) -> float:
        if self.denominator > 0:
            return float(self.numerator) / float(self.denominator)
        return float(self.numerator > 0)


def rates(counts: Mapping[str, Counts]) -> dict[str, float]:
    """{name: Counts} -> {name: rate}."""
    return {name: Counts(*c).rate for name, c in counts.items()}


def error_counts(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> Counts:
    """(Σ edit distance, Σ reference length) over a corpus of token sequences."""
    if len(refs) != len(hyps):
        raise ValueError(f"error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    return Counts(edits, sum(len(r) for r in refs))


def error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Σ edit distance / Σ reference length over a corpus of token sequences."""
    return error_counts(refs, hyps).rate


def to_visemes(phones: Sequence[str]) -> list[str]:
    """Phones → viseme classes (lipjax/synth/visemes.py), runs of one class merged.

    Lips show a class, not a phone (p/b/m look the same), and two neighbouring phones of one
    class are one gesture on screen, so the merged class sequence is what lips can tell. A
    phone with no class keeps its own name (it can only match itself).
    """
    from lipjax.synth import visemes

    out: list[str] = []
    for phone in phones:
        try:
            classes = visemes.classes(phone)
        except KeyError:
            classes = (f"<{phone}>",)
        for cls in classes:
            if cls != "silence" and (not out or out[-1] != cls):
                out.append(cls)
    return out


def viseme_error_counts(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> Counts:
    """`error_counts` between phone sequences after mapping both sides to viseme classes."""
    return error_counts([to_visemes(r) for r in refs], [to_visemes(h) for h in hyps])


def viseme_error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Error rate between phone sequences after mapping both sides to viseme classes: the
    limit of what lip reading can resolve without language knowledge."""
    return viseme_error_counts(refs, hyps).rate


def _counts(refs: Sequence[str], hyps: Sequence[str], fn) -> Counts:
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r.strip()]
    extra = sum(len(h.split() if fn is jiwer.process_words else h.strip())
                for r, h in zip(refs, hyps, strict=True) if not r.strip())
    if not pairs:
        return Counts(extra, 0)
    out = fn([r for r, _ in pairs], [h for _, h in pairs])
    edits = out.substitutions + out.deletions + out.insertions + extra
    return Counts(edits, out.substitutions + out.deletions + out.hits)


def wer_counts(refs: Sequence[str], hyps: Sequence[str]) -> Counts:
    """(word edits, reference words) of a corpus."""
    return _counts(refs, hyps, jiwer.process_words)


def cer_counts(refs: Sequence[str], hyps: Sequence[str]) -> Counts:
    """(character edits, reference characters) of a corpus."""
    return _counts(refs, hyps, jiwer.process_characters)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return wer_counts(refs, hyps).rate


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return cer_counts(refs, hyps).rate


def lid_counts(labels: np.ndarray, predictions: np.ndarray) -> Counts:
    """(correct, total) language predictions: the accuracy's two sums."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return Counts(int((labels == predictions).sum()), int(labels.size))


def lid_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float((labels == predictions).mean()) if labels.size else 0.0
