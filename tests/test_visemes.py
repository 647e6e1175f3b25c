"""Viseme groups of the phone inventory (lipjax/models/visemes.py), the LMDecoder's viseme
input and the stage-3 viseme read."""

import unittest.mock

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lipjax import metrics
from lipjax.models import visemes
from lipjax.models.lmdecoder import LMDecoder
from lipjax.synth import visemes as synth_visemes
from lipjax.units import phonemes


def test_groups_join_phones_lips_cannot_tell_apart():
    inventory = phonemes.load_inventory()
    ids, names = visemes.group_ids()
    unit = {p: i for i, p in enumerate(inventory.phones)}
    assert ids[unit["p"]] == ids[unit["b"]] == ids[unit["m"]]  # all close the lips
    assert names[ids[unit["p"]]] == "bilabial"
    assert ids[unit["f"]] != ids[unit["p"]]
    assert ids[phonemes.BLANK_ID] != ids[phonemes.WORD_ID]  # groups of their own
    for phone, group in zip(inventory.phones[2:], ids[2:], strict=True):
        try:
            assert names[group] == "+".join(synth_visemes.classes(phone))
        except KeyError:
            assert names[group] == f"<{phone}>"


def test_mean_matrix_averages_each_group():
    member = visemes.membership()
    mean = visemes.mean_matrix()
    assert member.shape == mean.T.shape == (phonemes.load_inventory().size, visemes.num_groups())
    np.testing.assert_array_equal(member.sum(1), 1.0)  # every unit in exactly one group
    np.testing.assert_allclose(mean.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(mean > 0, member.T > 0)


def test_lmdecoder_embeds_a_unit_as_its_group_mean():
    inventory = phonemes.load_inventory()
    lm = LMDecoder(inventory.size, 16, 8, memory_layers=0, decoder_layers=1, heads=2, ffn=16,
                   rngs=nnx.Rngs(0))
    unit = {p: i for i, p in enumerate(inventory.phones)}
    table = np.asarray(lm.memory())
    ids, _ = visemes.group_ids()
    bilabial = np.flatnonzero(ids == ids[unit["p"]])
    got = np.asarray(lm.embed_groups(jnp.asarray(ids)[jnp.asarray([[unit["p"], unit["m"]]])]))
    # A mean of a handful of float32 vectors: a few ulps of difference at most.
    np.testing.assert_allclose(got[0, 0], table[bilabial].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[0, 0], got[0, 1])  # p and m look the same
    assert jax.numpy.asarray(lm.viseme_memory()).shape == (visemes.num_groups(), 8)


def _units(*phones: str) -> list[int]:
    unit = {p: i for i, p in enumerate(phonemes.load_inventory().phones)}
    return [unit[p] for p in phones]


def test_viseme_sequence_drops_silence_and_boundaries_and_merges_runs():
    # "p a | b <silence> m i" as lips show it: bilabial, open vowel, bilabial (b, m: one
    # closure across the silence), close vowel.
    ids = jnp.asarray([_units("p", "a", "|", "b", "<blank>", "m", "i", "a")])
    mask = jnp.asarray([[True] * 7 + [False]])  # the last unit is padding
    groups, group_mask = visemes.viseme_sequence(ids, mask)
    names = visemes.group_ids()[1]
    got = [names[g] for g, m in zip(groups[0].tolist(), group_mask[0].tolist(), strict=True)
           if m]
    assert got == ["bilabial", "open_vowel", "bilabial", "close_vowel"]
    assert np.asarray(groups[0])[~np.asarray(group_mask[0])].tolist() == [0] * 4


def test_run_means_average_each_run():
    groups = jnp.asarray([[3, 3, 0, 3, 5, 5, 4, 0]])
    valid = groups != 0
    index, count = visemes.runs(groups, valid)
    assert np.asarray(index).tolist() == [[0, 0, 8, 0, 1, 1, 2, 8]]
    assert int(count[0]) == 3
    x = jnp.arange(8, dtype=jnp.float32)[None, :, None]
    means, mask = visemes.run_means(x, index, count)
    # float32 sums of three small integers, one division: within one ulp.
    np.testing.assert_allclose(np.asarray(means)[0, :, 0], [4 / 3, 4.5, 6.0, 0, 0, 0, 0, 0],
                               rtol=1e-6)
    assert np.asarray(mask).tolist() == [[True] * 3 + [False] * 5]


def test_lipreader_reads_viseme_runs_of_the_unit_posteriors():
    """Stage 3 with memory_units="visemes": the memory encoder receives one input per run of
    frames whose most probable viseme group (the unit posteriors summed per group) is the same,
    silence dropped, each the mean of its frames' group-posterior reads."""
    import ml_collections

    from lipjax.models import factory

    inventory = phonemes.load_inventory()
    model_cfg = factory.model_config("tiny", text_vocab=20, languages=("it",), dropout=0.0,
                                     memory_addressing="posterior", memory_units="visemes",
                                     memory_residual=False, memory_layers=0)
    config = ml_collections.ConfigDict({"model": model_cfg, "train": {"dtype": "float32"}})
    model = factory.lipreader(config, nnx.Rngs(0))
    model.eval()
    rng = np.random.default_rng(0)
    t = 12
    video = jnp.asarray(rng.integers(0, 256, (2, t, 24, 24), np.uint8))
    mask = jnp.asarray(np.arange(t)[None] < np.array([[t], [9]]))
    lang = jnp.zeros((2,), jnp.int32)
    # The unit head decides the groups: make it prefer a fixed unit per frame.
    units = jnp.asarray(_units("p", "m", "<blank>", "b", "a", "a", "i", "p", "f", "f", "a",
                               "a"))
    logits = 20.0 * jax.nn.one_hot(units, inventory.size)[None].repeat(2, 0)
    with unittest.mock.patch.object(type(model.unit_head), "__call__",
                                    lambda self, x: logits):
        states, out_mask = model.encode(video, mask, lang)
    # bilabial (p m _ b), open (a a), close (i), bilabial (p), labiodental (f f), open (a a);
    # the second clip ends after frame 9: ... labiodental (f).
    assert np.asarray(out_mask).sum(1).tolist() == [6, 5]
    group_probs = jax.nn.softmax(logits, -1) @ jnp.asarray(visemes.membership())
    reads = group_probs @ model.decoders.lmdecoders["it"].viseme_memory()
    first = np.asarray(states)[0, 0]
    # The memory encoder is absent (memory_layers=0): states are the run means themselves; the
    # first run averages frames 0, 1, 3 (frame 2 is silence).
    np.testing.assert_allclose(first, np.asarray(reads[0, [0, 1, 3]].mean(0)), rtol=1e-5,
                               atol=1e-6)


def test_viseme_mix_needs_phoneme_units():
    import pytest

    from lipjax.tasks.lmdecoder import unit_input
    from lipjax.tasks.text import TextSettings
    from lipjax.units.targets import UnitTargets

    settings = TextSettings(units=UnitTargets("acoustic", True), ctc_weight=0.3,
                            label_smoothing=0.1, token_dropout=0.0, beam_size=1,
                            decode_ctc_weight=0.3, length_penalty=0.0, max_decode_len=0,
                            viseme_mix=0.5)
    batch = {"dedup_units": np.ones((2, 3), np.int32), "dedup_units_mask": np.ones((2, 3), bool)}
    with pytest.raises(ValueError, match="viseme_mix"):
        unit_input(batch, settings, jax.random.key(0))


def test_corrupt_keeps_sequences_well_formed_and_errs_at_its_rate():
    _, names = visemes.group_ids()
    word = names.index(f"<{phonemes.WORD}>")
    b, t, n = 64, 40, 30  # n real groups per row, room for insertions
    rng = np.random.default_rng(0)
    real = [g for g in range(len(names)) if g not in (visemes.SILENCE_GROUP, word)]
    groups = jnp.asarray(np.pad(rng.choice(real, (b, n)), ((0, 0), (0, t - n))), jnp.int32)
    mask = jnp.arange(t)[None] < n
    same, same_mask = visemes.corrupt(groups, mask, 0.0, jax.random.key(0))
    np.testing.assert_array_equal(same, groups)
    np.testing.assert_array_equal(same_mask, jnp.broadcast_to(mask, (b, t)))
    out, out_mask = (np.asarray(x) for x in visemes.corrupt(groups, mask, 0.3,
                                                             jax.random.key(1)))
    lengths = out_mask.sum(1)
    assert (lengths >= 1).all()
    np.testing.assert_array_equal(out_mask, np.arange(t)[None] < lengths[:, None])  # left-aligned
    assert not np.isin(out[out_mask], [visemes.SILENCE_GROUP, word]).any()
    assert (out[~out_mask] == 0).all()
    # Deletions and insertions are equally likely: the mean length stays near n (each row's
    # length is n + Binomial-like noise with sd ≈ sqrt(n · 0.2) ≈ 2.4; the mean of 64 rows
    # within 4 sd of its own spread, 4 · 2.4 / 8 = 1.2).
    assert abs(lengths.mean() - n) < 1.2
    # Edits: 30 % of the groups, a little less as an edit distance (a deletion beside an
    # insertion counts once; a random group may be the same one). The rate over 64 · 30
    # groups has sd ≈ sqrt(0.3 · 0.7 / 1920) ≈ 0.01.
    edits = sum(metrics.edit_distance(list(np.asarray(groups)[r, :n]),
                                      list(out[r, :lengths[r]])) for r in range(b))
    assert 0.2 < edits / (b * n) < 0.33


def _group(name: str) -> int:
    return visemes.group_ids()[1].index(name)


def _scores(*names: str) -> jnp.ndarray:
    """(1, T, G) group log-posteriors, each frame sure of its named group."""
    return jnp.log(jax.nn.one_hot(jnp.asarray([[_group(n) for n in names]]),
                                  visemes.num_groups()) * 0.9 + 0.1 / visemes.num_groups())


def test_ctc_runs_skip_blank_and_word_boundary_frames_and_merge_as_stage_2():
    # CTC frames of "p a | b m i": blanks between spikes, a word-boundary spike, b and m
    # (one group) on either side of a blank, a repeated vowel separated by a blank.
    frames = ("silence", "bilabial", "silence", "open_vowel", "silence", "open_vowel",
              "<|>", "bilabial", "silence", "bilabial", "close_vowel", "silence")
    index, count = visemes.ctc_runs(_scores(*frames), jnp.ones((1, len(frames)), bool))
    t = len(frames)
    # Stage 2 reads "p a | b m i" as bilabial, open vowel, bilabial, close vowel
    # (test_viseme_sequence_drops_silence_and_boundaries_and_merges_runs): the same runs.
    assert int(count[0]) == 4
    assert np.asarray(index)[0].tolist() == [t, 0, t, 1, t, 1, t, 2, t, 2, 3, t]


def test_ctc_runs_join_one_group_across_a_word_boundary_and_keep_an_all_blank_clip():
    frames = ("bilabial", "<|>", "silence", "bilabial")  # "p | b": one closure, as in stage 2
    index, count = visemes.ctc_runs(_scores(*frames), jnp.ones((1, 4), bool))
    assert int(count[0]) == 1 and np.asarray(index)[0].tolist() == [0, 4, 4, 0]
    # A clip of blanks only still gives the decoder an input: every frame under its best
    # shown group (here all the same one: one run).
    blank = jnp.where(jnp.arange(visemes.num_groups()) == visemes.SILENCE_GROUP, 0.0,
                      jnp.where(jnp.arange(visemes.num_groups()) == _group("bilabial"),
                                -1.0, -5.0))
    index, count = visemes.ctc_runs(jnp.broadcast_to(blank, (1, 3, visemes.num_groups())),
                                    jnp.asarray([[True, True, False]]))
    assert int(count[0]) == 1 and np.asarray(index)[0].tolist() == [0, 0, 3]


def _lipreader(memory_units: str):
    import ml_collections

    from lipjax.models import factory

    model_cfg = factory.model_config("tiny", text_vocab=20, languages=("it",), dropout=0.0,
                                     memory_addressing="posterior", memory_units=memory_units,
                                     memory_residual=False, memory_layers=0)
    config = ml_collections.ConfigDict({"model": model_cfg, "train": {"dtype": "float32"}})
    model = factory.lipreader(config, nnx.Rngs(0))
    model.eval()
    return model


def _clips(t: int):
    rng = np.random.default_rng(0)
    video = jnp.asarray(rng.integers(0, 256, (2, t, 24, 24), np.uint8))
    mask = jnp.asarray(np.arange(t)[None] < np.array([[t], [t - 3]]))
    return video, mask, jnp.zeros((2,), jnp.int32)


def test_lipreader_ctc_read_skips_blanks_and_boundaries_and_renormalises():
    """memory_units="visemes_ctc": a CTC unit head's blank and word-boundary frames give no
    input; a spike frame reads its group posteriors without the blank's and the boundary's
    share, so a run's input is a mixture of the groups lips show only."""
    inventory = phonemes.load_inventory()
    model = _lipreader("visemes_ctc")
    units = jnp.asarray(_units("<blank>", "p", "<blank>", "<blank>", "m", "|", "a", "<blank>",
                               "a", "i", "<blank>", "<blank>"))
    # Peaky CTC posteriors: spikes that still leave the blank a good share of their mass.
    logits = 4.0 * jax.nn.one_hot(units, inventory.size)
    logits = logits + 3.0 * jax.nn.one_hot(phonemes.BLANK_ID, inventory.size)
    logits = logits[None].repeat(2, 0)
    video, mask, lang = _clips(units.shape[0])
    with unittest.mock.patch.object(type(model.unit_head), "__call__",
                                    lambda self, x: logits):
        states, out_mask = model.encode(video, mask, lang)
        weights = model.memory_attention(video, mask, "it")
    # p _ _ m | (one bilabial run), a _ a (one open vowel run), i; the second clip ends
    # before the last three frames (i included).
    assert np.asarray(out_mask).sum(1).tolist() == [3, 2]
    hidden = [visemes.SILENCE_GROUP, _group("<|>")]
    assert float(jnp.abs(weights[..., hidden]).max()) == 0.0  # no weight on blank or boundary
    np.testing.assert_allclose(np.asarray(weights.sum(-1)), 1.0, rtol=1e-6)
    group_probs = np.array(jax.nn.softmax(logits, -1) @ jnp.asarray(visemes.membership()))
    group_probs[..., hidden] = 0.0
    group_probs /= group_probs.sum(-1, keepdims=True)
    reads = group_probs @ np.asarray(model.decoders.lmdecoders["it"].viseme_memory())
    # memory_layers=0: the states are the run means; the first averages frames 1 and 4.
    np.testing.assert_allclose(np.asarray(states)[0, 0], reads[0, [1, 4]].mean(0), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(np.asarray(states)[0, 1], reads[0, [6, 8]].mean(0), rtol=1e-5,
                               atol=1e-6)


def test_frame_label_viseme_read_is_unchanged():
    """memory_units="visemes" (a unit head trained on frame labels) reads as it always did:
    the group posteriors with silence included, silence frames dropped, runs of the weights'
    most-read group (the computation written out here), bit for bit."""
    model = _lipreader("visemes")
    video, mask, lang = _clips(12)
    states, out_mask = model.encode(video, mask, lang)

    visual = model.visual(video, mask)
    probs = jax.nn.softmax(model.unit_head(visual).astype(jnp.float32), axis=-1)
    logits = jnp.log(probs @ jnp.asarray(visemes.membership()) + 1e-30)
    memory = model.decoders.lmdecoders["it"].viseme_memory()
    weights = model.memory_read.weights(visual, memory, logits)
    read = model.memory_read.read(weights, visual, memory)
    groups = jnp.argmax(weights.mean(axis=1), axis=-1)
    valid = mask & (groups != visemes.SILENCE_GROUP)
    valid = jnp.where(valid.any(axis=1, keepdims=True), valid, mask)
    means, want_mask = visemes.run_means(read, *visemes.runs(groups, valid))
    want = model.decoders.encode(means, want_mask, lang)
    np.testing.assert_array_equal(np.asarray(out_mask), np.asarray(want_mask))
    np.testing.assert_array_equal(np.asarray(states), np.asarray(want))


def test_lipreader_ctc_read_by_attention_skips_blank_and_boundary_slots():
    """The learnt-attention read (no unit head) in its CTC form: frames whose most-read slot is
    the blank's or the boundary's give no input; the weights are the attention's own."""
    import ml_collections

    from lipjax.models import factory

    model_cfg = factory.model_config("tiny", text_vocab=20, languages=("it",), dropout=0.0,
                                     memory_addressing="attention",
                                     memory_units="visemes_ctc", memory_layers=0)
    config = ml_collections.ConfigDict({"model": model_cfg, "train": {"dtype": "float32"}})
    model = factory.lipreader(config, nnx.Rngs(0))
    model.eval()
    video, mask, lang = _clips(12)
    frames = ("silence", "bilabial", "<|>", "bilabial", "open_vowel", "silence") * 2
    weights = jnp.exp(_scores(*frames))[:, None].repeat(2, 0)  # (B, heads=1, T, G)
    with unittest.mock.patch.object(type(model.memory_read), "weights",
                                    lambda self, s, m, logits=None: weights):
        _, out_mask = model.encode(video, mask, lang)
    # bilabial (frames 1-3), open, bilabial, open; the second clip stops after frame 8.
    assert np.asarray(out_mask).sum(1).tolist() == [4, 3]
