"""The LID-ceiling classifier: n-grams carry what unigrams cannot."""

import numpy as np

from experiments.lid_ceiling import NaiveBayes, fuse, ngrams


def test_ngrams_with_edges():
    assert ngrams(("a", "b"), 2) == [("<s>",), ("a",), ("b",), ("</s>",),
                                     ("<s>", "a"), ("a", "b"), ("b", "</s>")]


def test_order_matters_where_only_the_order_of_symbols_differs():
    # Two "languages" over the same symbols, told apart only by which follows which.
    rng = np.random.default_rng(0)
    docs, labels = [], []
    for _ in range(200):
        label = int(rng.integers(2))
        pairs = [("a", "b"), ("c", "d")] if label == 0 else [("b", "a"), ("d", "c")]
        doc = sum((pairs[int(i)] for i in rng.integers(2, size=4)), ())
        docs.append(doc)
        labels.append(label)
    train, test = slice(0, 150), slice(150, 200)
    truth = np.asarray(labels[test])
    unigram = NaiveBayes(order=1).fit(docs[train], labels[train]).predict(docs[test])
    trigram = NaiveBayes(order=3).fit(docs[train], labels[train]).predict(docs[test])
    assert (trigram == truth).mean() > 0.95
    # Same symbol counts in both languages: unigrams cannot do much better than chance.
    assert (unigram == truth).mean() < 0.8


def test_fusion_follows_the_head_at_weight_zero_and_the_text_model_when_weighted():
    head = np.log(np.array([[0.6, 0.4], [0.3, 0.7], [0.55, 0.45]]))
    model = NaiveBayes(order=2).fit([("a", "b")] * 5 + [("b", "a")] * 5, [0] * 5 + [1] * 5)
    reads = [("b", "a"), ("a", "b"), ("a", "b")]
    lm = model.log_likelihoods(reads)
    assert lm.shape == (3, 2)
    assert np.array_equal(model.predict(reads), [1, 0, 0])
    assert np.array_equal(fuse(head, lm, 0.0), [0, 1, 0])
    assert np.array_equal(fuse(head, lm, 10.0), [1, 0, 0])
