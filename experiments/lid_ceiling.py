"""How well can the language be told from what lips show? A ceiling for stage 1's language ID.

    python -m experiments.lid_ceiling --data_dir out/data [--split validation] [--with_audio]

Lips show viseme classes, not phones (p/b/m look alike), so a lip reader can at best name the
language from a clip's viseme sequence. This trains a text classifier (multinomial naive Bayes
over 1–3-grams, add-one smoothing) on the exact phone sequences of the corpus's train split, in
two forms, phones and visemes (`lipjax.metrics.to_visemes`), and scores it on a held-out split:
the viseme score says what the `LID ≥ 95 %` target asks of a model that reads visemes
perfectly. By default it trains on the clips stage 1 sees (the video configs); `--with_audio`
adds the low-resource languages' audio-text sentences (more text, same languages).

With `--workdir` (a recipe run's directory, e.g. out/reproduce) it also scores the run's stage 1:
its language-ID head, and the same classifier trained and scored on stage 1's own viseme reads
(its decoded units of the train and held-out clips), which tells whether the head or the reads
limit stage 1's language ID; and the head fused with a text language model of the reads
(`fuse`: the exact-viseme classifier, trained on the corpus's text, scoring what stage 1 read,
at a weight chosen on the validation split).
"""

from __future__ import annotations

import argparse
import collections
import math
from collections.abc import Sequence

import numpy as np

from data_builders.synthetic_lips import HIGH_RESOURCE, LANGUAGES, LOW_RESOURCE
from lipjax import languages
from lipjax.metrics import to_visemes
from lipjax.units import phonemes

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

    def log_likelihoods(self, docs: Sequence[Doc]) -> np.ndarray:
        """(N, classes) log P(doc's n-grams | class)."""
        v = len(self.vocab)
        return np.asarray([[sum(math.log((c[g] + 1) / (t + v)) for g in ngrams(doc, self.order))
                            for c, t in zip(self.counts, self.totals, strict=True)]
                           for doc in docs]).reshape(len(docs), len(self.counts))

    def predict(self, docs: Sequence[Doc]) -> np.ndarray:
        return np.argmax(self.log_likelihoods(docs), axis=1)


def fuse(head_log_probs: np.ndarray, lm_log_likelihoods: np.ndarray,
         weight: float) -> np.ndarray:
    """The language maximising log P_head(language | clip) + weight × log P_LM(read | language):
    the LID head's choice corrected by a text language model of what stage 1 read."""
    return np.argmax(head_log_probs + weight * lm_log_likelihoods, axis=1)


FUSION_WEIGHTS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 100.0)


def without_words(phones: Sequence[str]) -> Doc:
    """The phones without word boundaries (lips do not show them)."""
    return tuple(p for p in phones if p != phonemes.WORD)


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
                seq = without_words(text.split())
                phones.append(seq)
                visemes.append(tuple(to_visemes(seq)))
                labels.append(label)
    return phones, visemes, labels


def stage1_reads(data_dir: str, workdir: str, split: str,
                 ) -> tuple[list[Doc], list[int], list[int]]:
    """(viseme reads, language labels, LID-head predictions) of the recipe's stage-1 run in
    `workdir` (its best checkpoint) on `split` of the five languages' video clips."""
    reads, labels, head, _ = stage1_reads_and_head(data_dir, workdir, split)
    return reads, labels, head


def stage1_reads_and_head(data_dir: str, workdir: str, split: str,
                          ) -> tuple[list[Doc], list[int], list[int], np.ndarray]:
    """`stage1_reads` and the LID head's log-probabilities (N, len(LANGUAGES))."""
    from experiments.recipe import Recipe, stage1_outputs
    from lipjax.tasks.common import valid_rows

    outputs, batches, _ = stage1_outputs(Recipe(data_dir=data_dir, workdir=workdir), split)
    inventory = phonemes.load_inventory()
    # Registry indices (the model's and the batches' labels) → positions in LANGUAGES.
    position = {languages.index(code): i for i, code in enumerate(LANGUAGES)}
    columns = [languages.index(code) for code in LANGUAGES]
    reads, labels, head, log_probs = [], [], [], []
    for out, batch in zip(outputs, batches, strict=True):
        for i in np.flatnonzero(valid_rows(batch)):
            units = [int(u) for u in out["units"][i][:int(out["units_len"][i])]]
            reads.append(tuple(to_visemes(without_words(inventory.decode(units)))))
            labels.append(position[int(batch["language"][i])])
            head.append(position.get(int(out["lid"][i]), -1))
            log_probs.append(np.asarray(out["lid_log_probs"][i])[columns])
    return reads, labels, head, np.asarray(log_probs)


def _row(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    row = {"all": 100 * float((pred == labels).mean())}
    for label, lang in enumerate(LANGUAGES):
        row[lang] = 100 * float((pred[labels == label] == label).mean())
    return row


def accuracy_table(train: tuple, held_out: tuple, order: int = 3) -> dict[str, dict[str, float]]:
    """{form: {"all": accuracy, lang: accuracy}} in %, for forms phones and visemes."""
    result = {}
    labels = np.asarray(held_out[2])
    for form, index in (("phones", 0), ("visemes", 1)):
        model = NaiveBayes(order).fit(train[index], train[2])
        result[form] = _row(model.predict(held_out[index]), labels)
    return result


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--with_audio", action="store_true")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--workdir", default="", help="a recipe run: also score its stage 1")
    args = parser.parse_args(argv)
    train = load(args.data_dir, "train", args.with_audio)
    held_out = load(args.data_dir, args.split)
    table = accuracy_table(train, held_out, args.order)
    if args.workdir:
        reads, labels, _ = stage1_reads(args.data_dir, args.workdir, "train")
        held = stage1_reads_and_head(args.data_dir, args.workdir, args.split)
        held_reads, held_labels, head, head_log_probs = held
        model = NaiveBayes(args.order).fit(reads, labels)
        table["stage-1 reads"] = _row(model.predict(held_reads), np.asarray(held_labels))
        table["stage-1 LID head"] = _row(np.asarray(head), np.asarray(held_labels))
        # The head fused with a text language model of the reads: the classifier of the exact
        # viseme sequences (`train`: the audio-text sentences too with --with_audio) scores what
        # stage 1 read; its weight is chosen on the validation split.
        text_lm = NaiveBayes(args.order).fit(train[1], train[2])
        tune = held if args.split == "validation" else stage1_reads_and_head(
            args.data_dir, args.workdir, "validation")
        tune_lm = text_lm.log_likelihoods(tune[0])
        weight = max(FUSION_WEIGHTS, key=lambda w: float(
            (fuse(tune[3], tune_lm, w) == np.asarray(tune[1])).mean()))
        fused = fuse(head_log_probs, text_lm.log_likelihoods(held_reads), weight)
        table[f"stage-1 LID head + text LM of its reads (weight {weight:g})"] = _row(
            fused, np.asarray(held_labels))
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
