"""Metrics on hand-checked examples."""

import numpy as np

from lipjax import metrics


def test_wer_cer_corpus_level():
    assert metrics.wer(["a b c", "d e"], ["a x c", "d e f"]) == 2 / 5
    assert metrics.cer(["abc"], ["abd"]) == 1 / 3
    assert metrics.wer(["a b"], ["a b"]) == 0.0
    # An empty reference counts its hypothesis words as insertions.
    assert metrics.wer(["a b", ""], ["a b", "x y"]) == 1.0


def test_unit_error_rate_and_lid_accuracy():
    assert metrics.edit_distance([1, 2, 3], [1, 3]) == 1
    assert metrics.edit_distance([], [4, 5]) == 2
    assert metrics.error_rate([[1, 2, 3], [4]], [[1, 3], [4]]) == 1 / 4
    assert metrics.lid_accuracy(np.array([0, 1, 2, 2]), np.array([0, 1, 1, 2])) == 0.75
