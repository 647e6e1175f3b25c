"""SIGTERM as a request to save and stop, agreed by every process on a common step.

Cluster schedulers (SLURM, TPU maintenance, Kubernetes) send SIGTERM some seconds before they
kill a job. The trainer then saves a checkpoint and exits 0, and a restart resumes. With several
processes the signal may reach them at different steps; they compare their flags at log steps
(one small collective), so all of them save the same step.
"""

from __future__ import annotations

import signal
from typing import Any

import jax
import numpy as np


class Preemption:
    """Context manager: installs the SIGTERM handler (main thread only) and restores the
    previous one on exit."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> Preemption:
        try:
            self._previous = signal.signal(signal.SIGTERM, self._on_signal)
            self._installed = True
        except ValueError:  # not the main thread: no preemption handling
            pass
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        del frame
        self.signal = signum

    @property
    def received(self) -> bool:
        return self.signal is not None

    def stop_now(self, step: int, log_every: int) -> bool:
        """Whether to save and stop after `step`: at once with one process; with several, at
        the first log step where any of them received the signal."""
        if jax.process_count() == 1:
            return self.received
        if step % log_every:
            return False
        from jax.experimental import multihost_utils

        return bool(np.any(multihost_utils.process_allgather(np.array([self.received]))))
