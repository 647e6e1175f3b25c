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


def test_viseme_error_rate_hand_computed():
    # p/b/m and t/d/n are pixel-identical: "pat" read as "bad" is 2 phone errors, 0 viseme errors.
    assert metrics.error_rate([["p", "a", "t"]], [["b", "a", "d"]]) == 2 / 3
    assert metrics.viseme_error_rate([["p", "a", "t"]], [["b", "a", "d"]]) == 0.0
    # "m b a" is one lip closure then an open vowel (2 classes); "a" misses the closure: 1 / 2.
    assert metrics.to_visemes(["m", "b", "a"]) == ["bilabial", "open_vowel"]
    assert metrics.viseme_error_rate([["m", "b", "a"]], [["a"]]) == 0.5
    # A diphthong is one class per element; "f" for "s" is a substitution (labiodental vs
    # sibilant). refs: [open, close_vowel, sibilant] + [bilabial, open]; 1 edit / 5.
    assert metrics.to_visemes(["aɪ", "s"]) == ["open_vowel", "close_vowel", "sibilant"]
    assert metrics.viseme_error_rate([["aɪ", "s"], ["p", "a"]],
                                     [["aɪ", "f"], ["m", "a"]]) == 1 / 5
