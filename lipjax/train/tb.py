"""Scalar logging: TensorBoard event files (tensorboardX, no TensorFlow) + `metrics.jsonl`.

The jsonl file is what the recipe's plots read (one JSON object per line: step, split, metrics);
TensorBoard is for watching a run. Only process 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax


class MetricWriter:
    """Writes scalars under `{workdir}/tb` and appends them to `{workdir}/metrics.jsonl`."""

    def __init__(self, workdir: str, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        if self.enabled:
            from tensorboardX import SummaryWriter

            os.makedirs(workdir, exist_ok=True)
            self._tb = SummaryWriter(logdir=os.path.join(workdir, "tb"))

    def write(self, step: int, metrics: dict[str, float], split: str = "train") -> None:
        """Log `metrics` (already host floats) as `{split}/{name}`."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in metrics.items()}
        for k, v in clean.items():
            self._tb.add_scalar(f"{split}/{k}", v, step)
        rec = {"step": int(step), "split": split, "time": time.time()}
        rec.update({k: (v if math.isfinite(v) else str(v)) for k, v in clean.items()})
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """The records of `{workdir}/metrics.jsonl` (optionally one split), in order."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        recs = [json.loads(line) for line in f if line.strip()]
    return [r for r in recs if split is None or r["split"] == split]
