"""How well can the language be told from what lips show? A ceiling for stage 1's language ID.

    python -m experiments.lid_ceiling --data_dir out/data [--split validation] [--with_audio]

Lips show viseme classes, not phones (p/b/m look alike), so a lip reader can at best name the
language from a clip's viseme sequence. This trains a text classifier (multinomial naive Bayes
over 1–3-grams, add-one smoothing) on the exact phone sequences of the corpus's train split, in
two forms, phones and visemes (`lipjax.metrics.to_visemes`), and scores it on a held-out split:
the viseme score says what the `LID ≥ 95 %` target asks of a model that reads visemes
perfectly. By default it trains on the clips stage 1 sees (the video configs); `--with_audio`
adds the low-resource languages' audio-text sentences (more text, same languages).
"""

from __future__ import annotations

import argparse
import collections
import math
from collections.abc import Sequence

import numpy as np

from data_builders.synthetic_lips import HIGH_RESOURCE, LANGUAGES, LOW_RESOURCE
from lipjax.metrics import to_visemes

Doc = tuple[str, ...]


def ngrams(doc: Doc, order: int) -> list[Doc]:
    """All 1..order-grams of `doc`, with sentence-edge markers."""
    padded = ("<s>",) + tuple(doc) + ("</s>",)
    return [padded[i:i + n] for n in range(1, order + 1) for i in range(len(padded) - n + 1)]


class NaiveBayes:
    """Multinomial naive Bayes over n-gram counts with add-one smoothing and uniform priors
    (every language is equally likely, as in stage 1's mix)."""

    def __init__(self, order: int = 3) -> None:
        self.order = order
        self.counts: list[collections.Counter] = []
        self.totals: list[int] = []
        self.vocab: set[Doc] = set()

    def fit(self, docs: Sequence[Doc], labels: Sequence[int]) -> NaiveBayes:
        num_classes = max(labels) + 1
        self.counts = [collections.Counter() for _ in range(num_classes)]
        for doc, label in zip(docs, labels, strict=True):
            grams = ngrams(doc, self.order)
            self.counts[label].update(grams)
            self.vocab.update(grams)
        self.totals = [sum(c.values()) for c in self.counts]
        return self

    def predict(self, docs: Sequence[Doc]) -> np.ndarray:
        v = len(self.vocab)
        out = []
        for doc in docs:
            grams = ngrams(doc, self.order)
            scores = [sum(math.log((c[g] + 1) / (t + v)) for g in grams)
                      for c, t in zip(self.counts, self.totals, strict=True)]
            out.append(int(np.argmax(scores)))
        return np.asarray(out)


def load(data_dir: str, split: str, with_audio: bool = False,
         ) -> tuple[list[Doc], list[Doc], list[int]]:
    """(phone docs, viseme docs, language labels) of one split: the video configs, plus the
    low-resource audio configs with `with_audio`."""
    import tensorflow_datasets as tfds

    phones, visemes, labels = [], [], []
    for label, lang in enumerate(LANGUAGES):
        configs = [f"{lang}_video"]
        if with_audio and lang in LOW_RESOURCE:
            configs.append(f"{lang}_audio")
        for config in configs:
            source = tfds.data_source(f"synthetic_lips/{config}", split=split, data_dir=data_dir)
            for i in range(len(source)):
                text = source[i]["phonemes"]
                text = text.decode() if isinstance(text, bytes) else text
                seq = tuple(p for p in text.split() if p != "|")
                phones.append(seq)
                visemes.append(tuple(to_visemes(seq)))
                labels.append(label)
    return phones, visemes, labels


def accuracy_table(train: tuple, held_out: tuple, order: int = 3) -> dict[str, dict[str, float]]:
    """{form: {"all": accuracy, lang: accuracy}} in %, for forms phones and visemes."""
    result = {}
    labels = np.asarray(held_out[2])
    for form, index in (("phones", 0), ("visemes", 1)):
        model = NaiveBayes(order).fit(train[index], train[2])
        pred = model.predict(held_out[index])
        row = {"all": 100 * float((pred == labels).mean())}
        for label, lang in enumerate(LANGUAGES):
            row[lang] = 100 * float((pred[labels == label] == label).mean())
        result[form] = row
    return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--with_audio", action="store_true")
    parser.add_argument("--order", type=int, default=3)
    args = parser.parse_args(argv)
    train = load(args.data_dir, "train", args.with_audio)
    held_out = load(args.data_dir, args.split)
    table = accuracy_table(train, held_out, args.order)
    print(f"LID from exact sequences, naive Bayes over 1-{args.order}-grams; train "
          f"{len(train[2])} sentences ({'+'.join(HIGH_RESOURCE + LOW_RESOURCE)} video"
          f"{' + it/pt audio' if args.with_audio else ''}), {args.split} {len(held_out[2])}")
    print("| form | all | " + " | ".join(LANGUAGES) + " |")
    print("|---" * (len(LANGUAGES) + 2) + "|")
    for form, row in table.items():
        print(f"| {form} | {row['all']:.1f} | "
              + " | ".join(f"{row[lang]:.0f}" for lang in LANGUAGES) + " |")
    return table


if __name__ == "__main__":
    main()
