"""Host-side evaluation metrics: WER / CER (jiwer, corpus level), unit error rate (PER) by edit
distance, viseme error rate (VER), language-ID accuracy.

Corpus-level rates (total edits / total reference length) rather than a mean of per-utterance
rates, as reported in the lip-reading literature. An empty reference contributes its
hypothesis length as insertions (jiwer rejects empty references).
"""

from __future__ import annotations

from collections.abc import Sequence

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


def error_rate(refs: Sequence[Sequence], hyps: Sequence[Sequence]) -> float:
    """Σ edit distance / Σ reference length over a corpus of token sequences."""
    if len(refs) != len(hyps):
        raise ValueError(f"error_rate: {len(refs)} references but {len(hyps)} hypotheses")
    edits = sum(edit_distance(r, h) for r, h in zip(refs, hyps, strict=True))
    return edits / max(sum(len(r) for r in refs), 1)


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


def viseme_error_rate(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]]) -> float:
    """Error rate between phone sequences after mapping both sides to viseme classes: the
    limit of what lip reading can resolve without language knowledge."""
    return error_rate([to_visemes(r) for r in refs], [to_visemes(h) for h in hyps])


def _rate(refs: Sequence[str], hyps: Sequence[str], fn) -> float:
    pairs = [(r, h) for r, h in zip(refs, hyps, strict=True) if r.strip()]
    extra = sum(len(h.split() if fn is jiwer.process_words else h)
                for r, h in zip(refs, hyps, strict=True) if not r.strip())
    if not pairs:
        return float(extra > 0)
    out = fn([r for r, _ in pairs], [h for _, h in pairs])
    edits = out.substitutions + out.deletions + out.insertions + extra
    return edits / max(out.substitutions + out.deletions + out.hits, 1)


def wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return _rate(refs, hyps, jiwer.process_words)


def cer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    return _rate(refs, hyps, jiwer.process_characters)


def lid_accuracy(labels: np.ndarray, predictions: np.ndarray) -> float:
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    return float((labels == predictions).mean()) if labels.size else 0.0
