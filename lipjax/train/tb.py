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

    def __init__(self, workdir: str, enabled: bool | None = None,
                 resume_step: int | None = None):
        """`resume_step`: the step a run starts from (0: a fresh start); records after it
        (written by an interrupted run, about to be written again) are dropped from
        metrics.jsonl, and TensorBoard is told to purge them, so every reader sees each step
        once. None: append only."""
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self._tb = None
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        if self.enabled:
            from tensorboardX import SummaryWriter

            os.makedirs(workdir, exist_ok=True)
            if resume_step is not None:
                truncate_metrics(workdir, resume_step)
            self._tb = SummaryWriter(logdir=os.path.join(workdir, "tb"),
                                     purge_step=resume_step + 1 if resume_step else None)

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


def _read_records(path: str) -> list[dict]:
    """Every complete record; a last line cut short by a kill is skipped."""
    with open(path) as f:
        lines = f.read().split("\n")
    recs = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            recs.append(json.loads(line))
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1:]):
                raise ValueError(f"{path}: line {i + 1} is not JSON: {line[:200]!r}") from None
    return recs


def truncate_metrics(workdir: str, step: int) -> int:
    """Drops the records after `step` from `{workdir}/metrics.jsonl` (atomically); returns how
    many were dropped."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return 0
    recs = _read_records(path)
    kept = [r for r in recs if int(r["step"]) <= step]
    if len(kept) != len(recs):
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(tmp, path)
    return len(recs) - len(kept)


def read_metrics(workdir: str, split: str | None = None) -> list[dict]:
    """The records of `{workdir}/metrics.jsonl` (optionally one split), one per (split, step):
    where a step was written twice (a run killed after logging it, then resumed before it),
    the later record wins; records come in step order within each split."""
    path = os.path.join(workdir, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    latest: dict[tuple[str, int], dict] = {}
    for r in _read_records(path):
        if split is None or r["split"] == split:
            latest.pop((r["split"], int(r["step"])), None)
            latest[r["split"], int(r["step"])] = r
    return sorted(latest.values(), key=lambda r: int(r["step"]))
