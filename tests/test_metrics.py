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


def test_wer_counts_edits_by_hand_over_the_corpus():
    refs = ["the cat sat on the mat", "a dog barked", ""]
    hyps = ["the cat sat on mat", "a big dog barks", "hello"]
    # 1: "the" before "mat" deleted                         D=1          (6 reference words)
    # 2: "big" inserted, "barked" → "barks"                 I=1, S=1     (3)
    # 3: empty reference, "hello"                           I=1          (0)
    assert metrics.wer(refs, hyps) == 4 / 9
    # Σ edits / Σ reference words, not the mean of the utterances' rates: one long correct
    # utterance and one short wrong one give 1/11, where a mean of rates would give 1/2.
    assert metrics.wer(["a b c d e f g h i j", "k"], ["a b c d e f g h i j", "x"]) == 1 / 11
    assert metrics.wer(["a b c"], ["x y z"]) == 1.0  # 3 substitutions
    assert metrics.wer(["a b"], ["a b c d e f"]) == 2.0  # 4 insertions / 2 words: WER > 1
    assert metrics.wer(["a b c d"], [""]) == 1.0  # 4 deletions


def test_cer_counts_characters_spaces_included():
    # "ab cd" (5 characters: a b ␣ c d) → "ab d": c deleted (1); "xyz" → "xyzz": 1 insertion.
    assert metrics.cer(["ab cd", "xyz"], ["ab d", "xyzz"]) == 2 / 8
    # "kitten" → "sitting": k→s, e→i, g inserted.
    assert metrics.cer(["kitten"], ["sitting"]) == 3 / 6
    # An empty reference adds its hypothesis' characters (here 3: x ␣ y) as insertions.
    assert metrics.cer(["abcd", ""], ["abcd", "x y"]) == 3 / 4


def test_empty_references():
    # Only empty references: no reference length to divide by; any hypothesis is all error
    # (rate 1), none is none (rate 0).
    assert metrics.wer([""], ["a b"]) == 1.0
    assert metrics.wer(["", ""], ["", ""]) == 0.0
    assert metrics.cer([""], ["ab"]) == 1.0
    assert metrics.cer([""], [""]) == 0.0
    assert metrics.error_rate([[]], [[7]]) == 1.0
    assert metrics.error_rate([[]], [[]]) == 0.0
    # Beside a non-empty reference, an empty one adds insertions but no length: 2 edits / 1.
    assert metrics.error_rate([[], [1]], [[2, 3], [1]]) == 2.0
    assert metrics.wer(["a", ""], ["a", "b c"]) == 2.0


def test_unit_error_rate_by_hand():
    assert metrics.edit_distance("kitten", "sitting") == 3
    assert metrics.edit_distance([1, 2, 3], [3, 2, 1]) == 2  # 1→3 and 3→1
    assert metrics.edit_distance([1, 2, 3], []) == 3
    # 1: [1 2 3 4] → [1 3 4 7]: 2 deleted, 7 inserted (2 edits; shifting by substitutions
    #    would take 3); 2: [5 6] → []: 2 deletions. Σ edits 4 / Σ length 6, where the mean of
    #    the utterances' rates would be (2/4 + 2/2) / 2 = 3/4.
    assert metrics.error_rate([[1, 2, 3, 4], [5, 6]], [[1, 3, 4, 7], []]) == 4 / 6


def test_viseme_error_rate_over_a_corpus():
    refs = [["p", "a", "t"], ["t", "i"]]
    hyps = [["k", "a", "d"], ["s", "i", "n"]]
    # phones: p→k, t→d; t→s, n inserted: 4 edits / 5 phones
    assert metrics.error_rate(refs, hyps) == 4 / 5
    # visemes: [bilabial open alveolar] → [velar open alveolar]: 1 substitution;
    # [alveolar close] → [sibilant close alveolar]: 1 substitution + 1 insertion: 3 / 5
    assert metrics.viseme_error_rate(refs, hyps) == 3 / 5


def test_lid_accuracy_by_hand():
    labels = np.array([0, 1, 2, 3, 4, 4])
    assert metrics.lid_accuracy(labels, np.array([0, 1, 2, 3, 4, 4])) == 1.0
    assert metrics.lid_accuracy(labels, np.array([1, 1, 2, 0, 0, 4])) == 3 / 6
    assert metrics.lid_accuracy(labels, np.array([4, 4, 4, 4, 1, 1])) == 0.0
    assert metrics.lid_accuracy(np.array([], int), np.array([], int)) == 0.0
