"""models/stack.py: the scanned layer stack computes what a loop over its layers computes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lipjax.models.conformer import ConformerBlock, Encoder, TransformerBlock
from lipjax.models.stack import LayerStack

DIM, LAYERS = 16, 3


def blocks(kind: str):
    if kind == "conformer":
        return lambda r: ConformerBlock(DIM, 2, 32, 3, 0.0, "batch", dtype=jnp.float32, rngs=r)
    return lambda r: TransformerBlock(DIM, 2, 32, 0.0, dtype=jnp.float32, rngs=r)


def inputs() -> tuple[jax.Array, jax.Array]:
    x = jax.random.normal(jax.random.key(1), (2, 6, DIM))
    return x, jnp.arange(6)[None] < jnp.array([[6], [4]])


@pytest.mark.parametrize("kind", ["conformer", "transformer"])
def test_scan_equals_loop_over_layers(kind):
    stack = LayerStack(blocks(kind), LAYERS, rngs=nnx.Rngs(0))
    stack.eval()
    graphdef, state = nnx.split(stack.blocks)
    leaves = jax.tree.leaves(state)
    assert all(a.shape[0] == LAYERS for a in leaves)
    kernel = stack.blocks.ff1.up.kernel if kind == "conformer" else stack.blocks.ff.up.kernel
    assert not np.allclose(kernel[0], kernel[1])  # each layer has its own initial weights
    x, mask = inputs()
    looped = x
    for i in range(LAYERS):
        layer = jax.tree.map(lambda a, i=i: a[i], state)
        looped = nnx.merge(graphdef, layer)(looped, mask)
    scanned = stack(x, mask)
    # Same operations on the same float32 values; only fusion may differ: a few ulps per layer.
    np.testing.assert_allclose(scanned, looped, rtol=1e-5, atol=1e-5)


def test_train_mode_updates_each_layer_state():
    stack = LayerStack(blocks("conformer"), LAYERS, rngs=nnx.Rngs(0))
    before = np.array(stack.blocks.conv.norm.norm.mean[...])
    stack.train()
    stack(*inputs())
    after = np.array(stack.blocks.conv.norm.norm.mean[...])
    assert after.shape == (LAYERS, DIM)
    assert (np.abs(after - before).max(axis=1) > 0).all()  # every layer's BatchNorm moved


def test_dropout_differs_between_layers_and_calls():
    enc = Encoder(DIM, DIM, LAYERS, 2, 32, kernel=3, dropout=0.5, rngs=nnx.Rngs(0))
    enc.train()
    x, mask = inputs()
    assert not np.allclose(enc(x, mask), enc(x, mask))


def test_remat_keeps_gradients():
    """Every remat policy recomputes the same float32 operations: gradients equal up to the
    order XLA fuses them in."""
    x, mask = inputs()
    grads = []
    for remat in (False, True, "dots", "dots_all"):
        enc = Encoder(DIM, DIM, LAYERS, 2, 32, kernel=3, dropout=0.0, remat=remat,
                      rngs=nnx.Rngs(0))
        enc.eval()
        grads.append(jax.tree.leaves(nnx.grad(lambda m: m(x, mask).sum())(enc)))
    for other in grads[1:]:
        for a, b in zip(grads[0], other, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_unknown_remat_policy_is_an_error():
    with pytest.raises(ValueError, match="train.remat"):
        LayerStack(blocks("transformer"), 2, remat="everything", rngs=nnx.Rngs(0))


def test_no_layers_is_an_error():
    with pytest.raises(ValueError, match="at least one layer"):
        LayerStack(blocks("transformer"), 0, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("remat", [False, True])
def test_runs_inside_a_jax_loop(remat):
    """Decoding calls the decoder inside lax.while_loop (lipjax/decoding.py): the stack must work
    there on a model created outside the loop, and give what it gives outside."""
    enc = Encoder(DIM, DIM, LAYERS, 2, 32, kernel=3, dropout=0.5, remat=remat, rngs=nnx.Rngs(0))
    enc.eval()
    x, mask = inputs()

    @nnx.jit
    def twice(e):
        body = lambda c: (c[0] + 1, e(c[1], mask))
        return jax.lax.while_loop(lambda c: c[0] < 2, body, (0, x))[1]

    np.testing.assert_allclose(twice(enc), enc(enc(x, mask), mask), rtol=1e-5, atol=1e-5)
