"""Progress bar (tqdm) with steps/s, clips/s and ETA, shown by process 0 only."""

from __future__ import annotations

import sys

import jax
from tqdm.auto import tqdm


class Progress:
    """A thin tqdm wrapper: `update(n)` per step, `postfix(dict)` at log steps."""

    def __init__(self, start: int, total: int, batch_size: int, enabled: bool | None = None):
        enabled = jax.process_index() == 0 if enabled is None else enabled
        self.batch_size = batch_size
        # Into a log file (not a terminal): a line every 30 s, not a redraw every step.
        interactive = sys.stderr.isatty()
        self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True,
                         disable=not enabled, file=sys.stderr, smoothing=0.1,
                         mininterval=0.1 if interactive else 30.0,
                         ascii=None if interactive else True)

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def postfix(self, metrics: dict[str, float]) -> None:
        rate = self._bar.format_dict.get("rate") or 0.0
        shown = {k: f"{v:.4g}" for k, v in metrics.items() if k in ("loss", "lr", "grad_norm")}
        shown["clips/s"] = f"{rate * self.batch_size:.1f}"
        self._bar.set_postfix(shown, refresh=False)

    def write(self, msg: str) -> None:
        self._bar.write(msg)

    def close(self) -> None:
        self._bar.close()
