"""Model invariants: padding never changes outputs at valid frames; remat changes nothing;
parameter counts are the architecture's, exactly."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from lipjax.models import factory
from lipjax.models.attention import rel_shift
from lipjax.models.decoder import shift_targets

T_VALID, T_PAD, HW = 6, 9, 24


def _config(**model):
    model = factory.model_config("tiny", unit_vocab=12, text_vocab=20, languages=("es",),
                                 dropout=0.0, **model)
    return ml_collections.ConfigDict({
        "model": model, "train": {"dtype": "float32"},
        "loss": {"lid_weight": 0.1, "ctc_weight": 0.1, "label_smoothing": 0.1,
                 "token_dropout": 0.0},
        "decoding": {"beam_size": 10, "decode_ctc_weight": 0.3, "length_penalty": 0.0,
                     "max_decode_len": 0}})


def _clip(seed=0):
    """uint8 pixels as the pipeline sends them; padding frames hold junk (not zeros), so the
    front end must zero them after normalising (normalised zeros would be -MEAN/STD)."""
    rng = np.random.default_rng(seed)
    valid = rng.integers(0, 256, (1, T_VALID, HW, HW), np.uint8)
    junk = rng.integers(0, 256, (1, T_PAD - T_VALID, HW, HW), np.uint8)
    padded = np.concatenate([valid, junk], axis=1)
    return (jnp.asarray(valid), jnp.ones((1, T_VALID), bool), jnp.asarray(padded),
            jnp.asarray(np.arange(T_PAD)[None] < T_VALID))


def _rounding_tolerance(config, reference) -> float:
    """How far float32 rounding alone can move an output of the visual model (frontend,
    encoder, head) when only the batch's shape changes (XLA may then sum in another order).

    Each layer's dot products of K terms carry a relative rounding error of about sqrt(K)·eps
    (errors of random sign add like a random walk); the errors of the D layers on the way to
    the output add up; the result scales with the output's magnitude. K: the widest fan-in
    (a 3x3 convolution over 8·width channels, or the FFN); D: the stem, 16 ResNet convolutions,
    4 sub-blocks per encoder layer and the head. A padding leak moves outputs by a sizeable
    fraction of their magnitude, far above this bound (tiny: ~2e-4 at magnitude 1)."""
    g = lambda k: factory.get(config, k)
    fan_in = max(9 * 8 * g("frontend_width"), g("ffn"), g("dim"))
    depth = 1 + 16 + 4 * g("layers") + 1
    eps = float(np.finfo(np.float32).eps)
    return depth * float(np.sqrt(fan_in)) * eps * max(1.0, float(np.abs(reference).max()))


def test_rel_shift_is_the_relative_position_gather():
    t = 5
    x = np.arange(t * (2 * t - 1), dtype=np.float32).reshape(t, 2 * t - 1)
    want = [[x[i, t - 1 - i + j] for j in range(t)] for i in range(t)]
    np.testing.assert_array_equal(rel_shift(jnp.asarray(x)), want)


@pytest.mark.parametrize("norm,train", [("batch", True), ("batch", False), ("group", True)])
def test_padding_never_changes_visual_outputs(norm, train):
    """frontend + conformer + unit head + LID head, BatchNorm in train mode (masked
    statistics) and eval mode (running averages), and per-frame GroupNorm."""
    config = _config(norm=norm)
    model = factory.visual_unit_model(config, nnx.Rngs(0))
    model.train() if train else model.eval()
    v, m, vp, mp = _clip()
    run = nnx.jit(lambda mdl, x, k: mdl(x, k))
    with jax.default_matmul_precision("highest"):  # full float32 where the default is lower
        a = run(model, v, m)
        b = run(model, vp, mp)
    for key in ("states", "unit_logits", "lid_logits"):
        want, got = np.asarray(a[key]), np.asarray(b[key])
        if key != "lid_logits":
            got = got[:, :T_VALID]
        np.testing.assert_allclose(got, want, rtol=0, atol=_rounding_tolerance(config, want),
                                   err_msg=key)


def test_padding_never_changes_lipreader_text_outputs():
    """Memory read + memory encoder + CTC head + decoder (padded frames and padded tokens)."""
    model = factory.lipreader(_config(), nnx.Rngs(1))
    model.eval()
    v, m, vp, mp = _clip(1)
    lang = jnp.array([1])  # "es"
    tokens = jnp.array([[5, 6, 7, 0, 0]])
    inputs, _, _ = shift_targets(tokens, tokens > 0)

    @nnx.jit
    def run(mdl, x, k, toks):
        states, k = mdl.encode(x, k, lang)
        dec = mdl.decoders
        return states, dec.ctc_logits(states, lang), dec.decode(toks, states, k, lang)

    sa, ca, da = run(model, v, m, inputs[:, :4])
    sb, cb, db = run(model, vp, mp, inputs.at[:, 4:].set(9))
    np.testing.assert_allclose(sa, sb[:, :T_VALID], atol=2e-4, rtol=2e-4)
    np.testing.assert_allclose(ca, cb[:, :T_VALID], atol=2e-4, rtol=2e-4)
    np.testing.assert_allclose(da, db[:, :4], atol=2e-4, rtol=2e-4)


@pytest.mark.slow  # three compiles of a lip reader's gradient: a minute or two on 2 cores
def test_remat_and_bfloat16_switches():
    """Remat recomputes the same function (same loss and gradients); bf16 compute keeps
    float32 parameters and stays close."""
    from lipjax.tasks import finetune

    v, m, _, _ = _clip(2)
    batch = {"video": v, "video_mask": m, "language": jnp.array([1]),
             "tokens": jnp.array([[5, 6, 7]]), "token_mask": jnp.ones((1, 3), bool)}

    def loss_and_grad(config):
        model = finetune.create_model(config, nnx.Rngs(3))
        model.train()
        settings = finetune.settings(config)
        grad_fn = nnx.value_and_grad(lambda mdl: finetune.loss_fn(mdl, batch, None, settings)[0])
        loss, grads = nnx.jit(grad_fn)(model)
        leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
        assert all(x.dtype == jnp.float32 for x in leaves)
        return float(loss), jax.tree.leaves(grads)

    base = _config()
    loss, grads = loss_and_grad(base)
    remat = ml_collections.ConfigDict(base.to_dict())
    remat.train.remat = True
    loss_r, grads_r = loss_and_grad(remat)
    assert np.isclose(loss, loss_r, rtol=1e-5)
    for g, gr in zip(grads, grads_r, strict=True):
        np.testing.assert_allclose(g, gr, atol=1e-5, rtol=1e-4)
    bf16 = ml_collections.ConfigDict(base.to_dict())
    bf16.train.dtype = "bfloat16"
    loss_b, _ = loss_and_grad(bf16)
    assert np.isfinite(loss_b) and abs(loss_b - loss) < 0.1 * abs(loss)


# ---------------------------------------------------------------------------------------------
# Parameter counts written from the architecture (lipjax/models/*.py docstrings, the sizes of
# factory.SIZES), against the models the tasks build, counted without allocating them.
# ---------------------------------------------------------------------------------------------


def _linear(i: int, o: int, bias: bool = True) -> int:
    return i * o + (o if bias else 0)


def _norm(d: int) -> int:
    """LayerNorm, BatchNorm (its running statistics are not parameters) or GroupNorm: a scale
    and a bias per channel."""
    return 2 * d


def _attention(d: int, rel_pos: bool = False) -> int:
    """q, k, v, out projections with biases; the relative-position variant adds the position
    projection (no bias) and the two per-head biases u, v (heads × head_dim = d each)."""
    return 4 * _linear(d, d) + (_linear(d, d, bias=False) + 2 * d if rel_pos else 0)


def _ffn(d: int, f: int) -> int:
    return _linear(d, f) + _linear(f, d)


def _frontend(w: int) -> int:
    """Conv3d 1→w (5×7×7, no bias) + BN, then ResNet-18: 4 stages of 2 basic blocks (two 3×3
    convs without bias, each followed by BN) of widths w, 2w, 4w, 8w; the first block of
    stages 2-4 changes width and has a 1×1 downsample conv + BN."""
    n = 5 * 7 * 7 * w + _norm(w)
    cin = w
    for cout in (w, 2 * w, 4 * w, 8 * w):
        for _ in range(2):
            n += 9 * cin * cout + _norm(cout) + 9 * cout * cout + _norm(cout)
            if cin != cout:
                n += cin * cout + _norm(cout)
            cin = cout
    return n


def _conformer_block(d: int, f: int, kernel: int) -> int:
    """Two macaron FFNs with their pre-norms, rel-pos MHSA + norm, conv module (norm,
    pointwise d→2d for the GLU, depthwise kernel with bias, BN, pointwise d→d), final norm."""
    macaron = 2 * (_norm(d) + _ffn(d, f))
    mhsa = _norm(d) + _attention(d, rel_pos=True)
    conv = _norm(d) + _linear(d, 2 * d) + kernel * d + d + _norm(d) + _linear(d, d)
    return macaron + mhsa + conv + _norm(d)


def _transformer_encoder(d: int, f: int, layers: int) -> int:
    """Pre-LN blocks (norm + MHSA, norm + FFN) and a final LayerNorm."""
    return layers * (_norm(d) + _attention(d) + _norm(d) + _ffn(d, f)) + _norm(d)


def _visual_encoder(size: dict) -> int:
    """Front end (8w features) → projection to dim (none when 8w = dim, as tiny's) →
    Conformer blocks. The Conformer ends with its last block's LayerNorm: no further
    encoder-level norm (auto_avsr's ESPnet encoder has one more, `after_norm`)."""
    w, d = size["frontend_width"], size["dim"]
    proj = _linear(8 * w, d) if 8 * w != d else 0
    return _frontend(w) + proj + size["layers"] * _conformer_block(d, size["ffn"], size["kernel"])


def _lmdecoder(size: dict, units: int, vocab: int) -> int:
    """Unit embeddings (the memory) + Transformer memory encoder + decoder (token embedding,
    blocks of self-attention, cross-attention and FFN with three pre-norms, final norm, output
    layer) + CTC head."""
    d, f = size["dim"], size["ffn"]
    memory = units * d
    if size["memory_layers"]:
        memory += _transformer_encoder(d, f, size["memory_layers"])
    block = 3 * _norm(d) + 2 * _attention(d) + _ffn(d, f)
    decoder = vocab * d + size["decoder_layers"] * block + _norm(d) + _linear(d, vocab)
    return memory + decoder + _linear(d, vocab)


def _count(model) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


TEXT_VOCAB = 1000


def _task_models(variant: str, tmp_path) -> dict:
    """{run: (config, parameter shapes)} of every distinct model the recipe's tasks build."""
    from experiments.recipe import METHODS, Recipe
    from lipjax.tasks import get_task

    recipe = Recipe(data_dir=str(tmp_path / "no_data"), workdir=str(tmp_path), variant=variant)
    runs = [("units_pretrain",), ("lmdecoder", "it")] + [("finetune", "it", m) for m in METHODS]
    out, seen = {}, []
    for run in runs:
        config = recipe.config(*run)
        config.model.text_vocab = TEXT_VOCAB  # no tokenizer here
        key = (config.task, config.model.to_json())
        if key in seen:  # noread, nomemory and scratch differ in their inits only
            continue
        seen.append(key)
        task = get_task(config.task)
        out[run] = config, nnx.eval_shape(lambda c=config, t=task: t.create_model(c,
                                                                                 nnx.Rngs(0)))
    return out


@pytest.mark.parametrize("variant", ["tiny", "small", "base"])
def test_parameter_counts_are_the_architecture(variant, tmp_path):
    """Exact counts: one missing or extra norm, bias or projection anywhere fails."""
    size = factory.SIZES[variant]
    d = size["dim"]
    models = _task_models(variant, tmp_path)
    assert len(models) == 5, list(models)  # stage 1, stage 2, memory, posterior, no read
    for run, (config, model) in models.items():
        units, langs = factory.unit_vocab(config), factory.num_languages(config)
        visual = _visual_encoder(size)
        if run[0] == "units_pretrain":  # + unit head + LID head (hidden layer d → d)
            assert config.loss.lid_weight > 0
            want = visual + _linear(d, units) + _linear(d, d) + _linear(d, langs)
        elif run[0] == "lmdecoder":
            want = _lmdecoder(size, units, TEXT_VOCAB)
        else:  # visual encoder + LMDecoder + the memory read
            m = config.model
            want = visual + _lmdecoder(size, units, TEXT_VOCAB)
            if m.memory_addressing == "attention":  # query and key projections
                want += 2 * _linear(d, d)
            if m.memory_addressing == "posterior":  # the stage-1 unit head
                want += _linear(d, units)
            if m.memory_addressing != "none" and m.memory_residual:
                want += _linear(d, d)
        assert _count(model) == want, (run, _count(model), want)
        if run[0] != "lmdecoder":
            assert _count(model.visual) == visual, run


def test_visual_encoder_counts_per_norm_and_encoder_kind():
    """GroupNorm has BatchNorm's parameters; the Transformer ablation of the visual encoder has
    pre-LN blocks, sinusoidal positions (no parameters) and a final LayerNorm."""
    size = factory.SIZES["tiny"]
    d, f, w = size["dim"], size["ffn"], size["frontend_width"]
    for overrides, want in (
            ({"norm": "group"}, _visual_encoder(size)),
            ({"encoder": "transformer"},
             _frontend(w) + _transformer_encoder(d, f, size["layers"]))):
        config = _config(**overrides)
        model = nnx.eval_shape(lambda c=config: factory.visual_encoder(c, nnx.Rngs(0)))
        assert _count(model) == want, overrides


def test_base_size_is_auto_avsr():
    """lipjax's base lip reader without the memory (no read, no memory encoder) is auto_avsr's
    VSR model (reported as 250.4 M parameters) but for two things, counted exactly: the
    LMDecoder's unit embeddings (its memory) and the ESPnet encoder's `after_norm`, which
    lipjax's Conformer has no counterpart of."""
    config = _config()
    config.model = factory.model_config("base", memory_addressing="none", memory_layers=0,
                                        text_vocab=5049, unit_vocab=12, languages=("en",))
    size, d, vocab = factory.SIZES["base"], 768, 5049
    block = 3 * _norm(d) + 2 * _attention(d) + _ffn(d, size["ffn"])
    auto_avsr = (_visual_encoder(size) + _norm(d)  # after_norm
                 + vocab * d + size["decoder_layers"] * block + _norm(d) + _linear(d, vocab)
                 + _linear(d, vocab))  # CTC
    assert round(auto_avsr / 1e5) == 2504, auto_avsr
    model = nnx.eval_shape(lambda: factory.lipreader(config, nnx.Rngs(0)))
    assert _count(model) == auto_avsr - _norm(d) + 12 * d


def test_stem_is_the_3d_convolution():
    """The stem (2D conv over 5 stacked frames) computes auto_avsr's 5x7x7 Conv3d."""
    from lipjax.models.frontend import Frontend

    fe = Frontend(4, "group", rngs=nnx.Rngs(0))
    video = jax.random.normal(jax.random.key(1), (2, 6, 16, 16))
    kernel2d = fe.stem.kernel.value  # (7, 7, 5, w)
    kernel3d = jnp.transpose(kernel2d, (2, 0, 1, 3))[:, :, :, None, :]  # (5, 7, 7, 1, w)
    ref = jax.lax.conv_general_dilated(
        video[..., None], kernel3d, (1, 2, 2), ((2, 2), (3, 3), (3, 3)),
        dimension_numbers=("NDHWC", "DHWIO", "NDHWC"), precision="highest")
    got = fe.stem_conv(video)
    np.testing.assert_allclose(np.asarray(got), np.asarray(ref), rtol=1e-4, atol=1e-4)


def test_depthwise_conv_matches_grouped_convolution_and_numpy():
    """The CPU lowering (shifted multiply-adds) computes what the grouped convolution (other
    backends) and a float64 numpy reference compute, within float32 rounding of K-term sums."""
    from lipjax.models.conformer import depthwise_conv1d

    rng = np.random.default_rng(0)
    b, t, c, k = 2, 11, 5, 7
    x, w = rng.normal(size=(b, t, c)), rng.normal(size=(k, 1, c))
    xp = np.pad(x, ((0, 0), (k // 2, k // 2), (0, 0)))
    terms = np.stack([xp[:, i:i + t] * w[i, 0] for i in range(k)])
    want, bound = terms.sum(0), k * np.finfo(np.float32).eps * np.abs(terms).sum(0)
    x32, w32 = jnp.asarray(x, jnp.float32), jnp.asarray(w, jnp.float32)
    got = np.asarray(depthwise_conv1d(x32, w32))
    grouped = np.asarray(jax.lax.conv_general_dilated(
        x32, w32, (1,), ((k // 2, k // 2),), dimension_numbers=("NWC", "WIO", "NWC"),
        feature_group_count=c, precision="highest"))
    assert np.all(np.abs(got - want) <= bound + 1e-30)
    assert np.all(np.abs(grouped - want) <= bound + 1e-30)
    # the gradient path too: d/dx of sum(y) is each frame's sum over the taps it meets
    gx = np.asarray(jax.grad(lambda v: depthwise_conv1d(v, w32).sum())(x32))
    ones = np.pad(np.ones((t,)), (k // 2, k // 2))
    want_gx = np.stack([sum(ones[j + k - 1 - i] * w[i, 0] for i in range(k))
                        for j in range(t)])[None].repeat(b, 0)
    np.testing.assert_allclose(gx, want_gx, rtol=0, atol=k * 4 * np.finfo(np.float32).eps
                               * np.abs(w).sum(0).max())
