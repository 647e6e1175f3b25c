"""Sentences for the synthetic corpus, drawn from each language's most frequent words.

Word sequences sampled from `wordfreq` lists are not grammatical, but they have the word and
phone statistics of the language, which is what a lip reader's decoder must learn from; sampling
by a flattened frequency (freq ** 0.5) keeps function words common without drowning the rest.
"""

from __future__ import annotations

import functools

import numpy as np

from lipjax import languages

# One-letter words that are real words (not elision fragments like French "l" or "d").
_ONE_LETTER_WORDS = frozenset("aàeéèiouy")


@functools.cache
def vocabulary(lang: str, top_n: int = 2000) -> tuple[tuple[str, ...], np.ndarray]:
    """The language's `top_n` most frequent clean words and their sampling probabilities."""
    import wordfreq

    language = languages.get(lang)
    words, weights = [], []
    for word in wordfreq.top_n_list(language.wordfreq_code, top_n * 2):
        clean = language.normalize(word)
        if clean != word or not word.replace("'", "").isalpha():
            continue
        if len(word) == 1 and word not in _ONE_LETTER_WORDS:
            continue
        words.append(word)
        weights.append(wordfreq.word_frequency(word, language.wordfreq_code) ** 0.5)
        if len(words) == top_n:
            break
    probs = np.asarray(weights, dtype=np.float64)
    return tuple(words), probs / probs.sum()


def sample_sentence(lang: str, rng: np.random.Generator, min_words: int = 3,
                    max_words: int = 7, top_n: int = 2000) -> str:
    """A normalised sentence of `min_words`..`max_words` words; deterministic given `rng`."""
    words, probs = vocabulary(lang, top_n)
    n = int(rng.integers(min_words, max_words + 1))
    picks = rng.choice(len(words), size=n, p=probs)
    return languages.get(lang).normalize(" ".join(words[i] for i in picks))
