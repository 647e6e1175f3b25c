"""Identical layers as one scanned layer.

`LayerStack` creates `count` copies of a block with `nnx.vmap` (each parameter gains a leading
layer axis; each layer's own random streams, so layers still start different) and applies them
with `nnx.scan`: XLA compiles one block whatever the depth, so compile time stops growing with
the number of layers (one block is compiled, not twelve). `remat` wraps the block in
`nnx.remat`: activations inside a block are recomputed in the backward pass and only the carry
between blocks is stored (True or "full"), or, with a policy name of `REMAT_POLICIES`, the
matmul outputs are kept and only the cheap element-wise work is recomputed ("dots": memory
for a little compute, what large-batch GPU/TPU runs usually want).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from flax import nnx

REMAT_POLICIES: dict[str, Callable[..., bool] | None] = {
    "full": None,  # save nothing inside a block
    "dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,  # keep weight matmuls
    "dots_all": jax.checkpoint_policies.checkpoint_dots,  # keep attention matmuls too
}


def remat_policy(remat: bool | str) -> Callable[..., bool] | None:
    """config train.remat → the jax.checkpoint policy (None: recompute everything)."""
    if isinstance(remat, bool):
        return None
    if remat not in REMAT_POLICIES:
        raise ValueError(f"config train.remat: expected a boolean or one of "
                         f"{sorted(REMAT_POLICIES)}, found {remat!r}")
    return REMAT_POLICIES[remat]


class LayerStack(nnx.Module):
    """`count` blocks made by `make(rngs)`, applied in order as `x = block(x, *args)`."""

    def __init__(self, make: Callable[[nnx.Rngs], nnx.Module], count: int, *,
                 remat: bool | str = False, rngs: nnx.Rngs) -> None:
        if count < 1:
            raise ValueError(f"LayerStack: expected at least one layer, found {count}")
        remat_policy(remat)  # a bad name fails here, at construction

        @nnx.split_rngs(splits=count)
        @nnx.vmap(in_axes=(0,), out_axes=0)
        def create(layer_rngs: nnx.Rngs) -> nnx.Module:
            return make(layer_rngs)

        self.remat = remat
        self.blocks = create(rngs)

    def __call__(self, x: jax.Array, *args: Any) -> jax.Array:
        """x: the carry (B, T, D); `args`: the same for every layer (masks, encoder states)."""

        def apply(block: nnx.Module, h: jax.Array, *rest: Any) -> jax.Array:
            return block(h, *rest)

        body = (nnx.remat(apply, policy=remat_policy(self.remat), graph=False)
                if self.remat else apply)
        # graph=False (tree mode): the blocks pass as a pytree, so the stack also runs inside
        # plain JAX loops (the decoders' lax.while_loop), which graph mode refuses for modules
        # created outside them ("Cannot extract graph node from different trace level").
        scan = nnx.scan(body, in_axes=(0, nnx.Carry) + (None,) * len(args),
                        out_axes=nnx.Carry, graph=False)
        return scan(self.blocks, x, *args)
