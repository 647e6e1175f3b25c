"""A stage-1 unit head trained before a language package added phones, read by a model of the
grown inventory (lipjax/models/grown_inventory.py): every old phone keeps its posterior, each new
phone shares the mass of the run's phone that looks most like it, and a phone with no stand-in is
an error naming how much the inventory grew and the two ways out.
"""

from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from lipjax import languages
from lipjax.models import grown_inventory
from lipjax.models.unit_head import UnitHead
from lipjax.units import phonemes

SWEDISH = {"ʉ": "close_round_vowel", "sx": "ʃ", "ɕ": "postalveolar", "ʂ": "postalveolar",
           "ɵː": "ɵ"}


@pytest.fixture
def swedish(monkeypatch):
    """Swedish registered for the test only (registration is process-wide)."""
    monkeypatch.setattr(languages, "_REGISTRY", dict(languages._REGISTRY))  # noqa: SLF001
    before = phonemes.load_inventory().size
    languages.register(languages.Language("sv", "Swedish", "sv", "sv", phones=SWEDISH))
    return before


def _softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_new_phones_read_through_their_nearest_phone(swedish):
    stands_for = grown_inventory.mapping(swedish, "run")
    phones = phonemes.load_inventory().phones
    assert {phones[n]: phones[s] for n, s in stands_for.items()} == {
            "ʉ": "u", "sx": "ʃ", "ɕ": "ʃ", "ʂ": "ʃ", "ɵː": "ɵ"}


def test_grown_head_keeps_every_old_posterior(swedish):
    rng = np.random.default_rng(0)
    kernel = rng.normal(size=(6, swedish)).astype(np.float32)
    bias = rng.normal(size=swedish).astype(np.float32)
    size = phonemes.load_inventory().size
    wide_kernel, wide_bias = grown_inventory.grow(kernel, bias, size, "run")
    assert wide_kernel.shape == (6, size) and wide_bias.shape == (size,)
    states = rng.normal(size=(5, 6)).astype(np.float32)
    old = _softmax(states @ kernel + bias)
    new = _softmax(states @ wide_kernel + wide_bias)
    folded = new[:, :swedish].copy()
    for n, s in grown_inventory.mapping(swedish, "run").items():
        folded[:, s] += new[:, n]
    # float32 logits: the bias shift log(k + 1) is rounded once, to float32's relative 6e-8.
    np.testing.assert_allclose(folded, old, rtol=1e-5, atol=1e-7)
    untouched = [i for i in range(swedish) if i != phonemes.load_inventory().id("u")
                 and i not in (phonemes.load_inventory().id(p) for p in ("ʃ", "ɵ"))]
    np.testing.assert_allclose(new[:, untouched], old[:, untouched], rtol=1e-5, atol=1e-7)
    assert np.allclose(new[:, phonemes.load_inventory().id("ʃ")],
                       new[:, phonemes.load_inventory().id("sx")])


def test_load_unit_head_widens_into_the_model(swedish):
    size = phonemes.load_inventory().size
    head = UnitHead(4, size, rngs=nnx.Rngs(0))
    kernel = np.arange(4 * swedish, dtype=np.float32).reshape(4, swedish)
    restored = {"proj": {"kernel": kernel, "bias": np.zeros(swedish, np.float32)}}
    assert grown_inventory.load_unit_head(head, restored, "run") == 2
    ours = np.asarray(head.proj.kernel.value)
    assert ours.shape == (4, size)
    np.testing.assert_array_equal(ours[:, :swedish], kernel)
    np.testing.assert_array_equal(ours[:, phonemes.load_inventory().id("ʉ")],
                                  kernel[:, phonemes.load_inventory().id("u")])
    with pytest.raises(ValueError, match="reads 3-d states, this model's 4"):
        grown_inventory.load_unit_head(head, {"proj": {"kernel": kernel[:3],
                                                       "bias": restored["proj"]["bias"]}}, "run")


def test_a_phone_without_a_stand_in_is_an_error_naming_the_ways_out(monkeypatch):
    monkeypatch.setattr(languages, "_REGISTRY", dict(languages._REGISTRY))  # noqa: SLF001
    before = phonemes.load_inventory().size
    languages.register(languages.Language("xq", "Test", "sv", "sv",
                                          phones={"ʘ": "bilabial+close_round_vowel"}))
    with pytest.raises(grown_inventory.GrownInventoryError) as e:
        grown_inventory.mapping(before, "runs/units_pretrain")
    message = str(e.value)
    assert f"grew from {before} to {before + 1} phones" in message and "(ʘ," in message
    assert "retrain stage 1 with the language's package" in message
    assert "Language(phones={'ʘ': " in message
    with pytest.raises(grown_inventory.GrownInventoryError, match="packages that are not"):
        grown_inventory.mapping(before + 5, "run")
