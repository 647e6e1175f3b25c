"""Running the recipe's runs as jobs with dependencies, several at a time, each in its own process.

Why: on a small CPU machine much of a run is single-threaded (XLA compilation, the Python data
pipeline, checkpoint writes), so two runs side by side finish sooner than one after the other.
The recipe's runs form a small graph (stage 2 and the from-scratch baseline do not need stage 1),
so independent runs overlap.

Each job is a picklable top-level function and its arguments. `run_jobs` starts a job once the
jobs it comes `after` have finished, at most `workers` at a time, ready jobs in list order.
A job's output (progress bar, logs) goes to `{log_dir}/{name}.log`; the caller's terminal gets
one line when a job starts and one when it ends. A failing job stops the rest and raises with
the job's name, its error and its log file. `workers=1` runs everything in this process, in
list order, with output on the terminal (what tests and debugging want).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Job:
    name: str
    fn: Callable[..., Any]
    args: tuple = ()
    after: tuple[str, ...] = ()


class JobError(RuntimeError):
    """A job raised; the message names the job and its log file."""


@contextlib.contextmanager
def _output_to(path: str) -> Iterator[None]:
    """Points this process's stdout/stderr file descriptors (Python and C++ output) at `path`."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_logged(fn: Callable[..., Any], args: tuple, log_path: str) -> Any:
    with _output_to(log_path):
        return fn(*args)


def _check(jobs: Sequence[Job]) -> None:
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError(f"run_jobs: job names repeat: {names}")
    for j in jobs:
        missing = [a for a in j.after if a not in names]
        if missing:
            raise ValueError(f"run_jobs: job {j.name!r} comes after unknown jobs {missing}")
        if any(names.index(a) > names.index(j.name) for a in j.after):
            raise ValueError(f"run_jobs: job {j.name!r} is listed before a job it needs; "
                             "list jobs after their dependencies")


def run_jobs(jobs: Sequence[Job], *, workers: int, log_dir: str,
             initializer: Callable[..., None] | None = None,
             initargs: tuple = ()) -> dict[str, Any]:
    """Runs `jobs` (see the module docstring); returns {name: result}, with each job's
    wall-clock seconds in {name + "/seconds": s}."""
    _check(jobs)
    results: dict[str, Any] = {}
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for job in jobs:
            start = time.time()
            results[job.name] = job.fn(*job.args)
            results[job.name + "/seconds"] = time.time() - start
        return results

    os.makedirs(log_dir, exist_ok=True)
    pending = list(jobs)
    running: dict[cf.Future, tuple[Job, float, str]] = {}
    context = multiprocessing.get_context("spawn")  # jax does not survive fork
    with cf.ProcessPoolExecutor(workers, mp_context=context, initializer=initializer,
                                initargs=initargs) as pool:
        while pending or running:
            for job in [j for j in pending if all(a in results for a in j.after)]:
                if len(running) >= workers:
                    break
                pending.remove(job)
                path = os.path.join(log_dir, f"{job.name}.log")
                print(f"[{time.strftime('%H:%M:%S')}] start  {job.name}  (log: {path})",
                      flush=True)
                running[pool.submit(_run_logged, job.fn, job.args, path)] = (job, time.time(),
                                                                             path)
            done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for future in done:
                job, start, path = running.pop(future)
                try:
                    results[job.name] = future.result()
                except Exception as e:
                    # Stop the other runs now rather than after they finish.
                    processes = list((getattr(pool, "_processes", None) or {}).values())
                    pool.shutdown(wait=False, cancel_futures=True)
                    for process in processes:
                        process.terminate()
                    raise JobError(f"job {job.name!r} failed: {type(e).__name__}: {e}; "
                                   f"its output is in {path}") from e
                results[job.name + "/seconds"] = time.time() - start
                print(f"[{time.strftime('%H:%M:%S')}] done   {job.name}  "
                      f"({time.time() - start:.0f} s)", flush=True)
    return results
