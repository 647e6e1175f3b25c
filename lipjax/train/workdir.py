"""One run per workdir: a lock file naming its holder, with stale-lock detection.

`{workdir}/lock.json` holds the host, pid and start time of the run that owns the workdir
(process 0 of it). A second run refuses to start and names the holder. A lock is stale, and is
taken over with a warning, when its pid is gone on this host, or when its holder (on any host
sharing the filesystem) has not refreshed the file's modification time for `stale_after_s`
(a heartbeat thread refreshes it every `stale_after_s / 4`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

log = logging.getLogger(__name__)

LOCK_NAME = "lock.json"


class WorkdirLocked(RuntimeError):
    """Another live run holds the workdir."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed but unreaped child is a zombie: dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


class WorkdirLock:
    """Exclusive ownership of a workdir by one run (see the module docstring)."""

    def __init__(self, workdir: str, stale_after_s: float = 600.0):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_NAME)
        self.stale_after_s = float(stale_after_s)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._held = False

    def _holder(self) -> dict | None:
        try:
            with open(self.path) as f:
                holder = json.load(f)
            holder["age_s"] = time.time() - os.path.getmtime(self.path)
            return holder
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # half-written or damaged: judge by age alone
            try:
                return {"host": "?", "pid": -1, "age_s": time.time() -
                        os.path.getmtime(self.path)}
            except FileNotFoundError:
                return None

    def _stale_reason(self, holder: dict) -> str | None:
        if holder.get("host") == self.host and int(holder.get("pid", -1)) > 0 \
                and not _pid_alive(int(holder["pid"])):
            return f"pid {holder['pid']} is no longer running on {self.host}"
        if holder["age_s"] > self.stale_after_s:
            return f"not refreshed for {holder['age_s']:.0f} s (> {self.stale_after_s:.0f} s)"
        return None

    def acquire(self) -> None:
        """Takes the lock or raises WorkdirLocked naming the holder."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        record = json.dumps({"host": self.host, "pid": self.pid,
                             "started": time.strftime("%Y-%m-%d %H:%M:%S")})
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None:
                    continue
                reason = self._stale_reason(holder)
                if reason is None:
                    raise WorkdirLocked(
                        f"{os.path.dirname(self.path)} is in use by another run: host "
                        f"{holder.get('host')}, pid {holder.get('pid')}, started "
                        f"{holder.get('started', '?')} (lock file {self.path}). Stop that run "
                        f"or use another --workdir; a lock not refreshed for "
                        f"{self.stale_after_s:.0f} s is taken over.") from None
                log.warning("taking over the stale lock %s of host %s pid %s: %s", self.path,
                            holder.get("host"), holder.get("pid"), reason)
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write(record)
            self._held = True
            self._thread = threading.Thread(target=self._heartbeat, daemon=True,
                                            name="workdir-lock")
            self._thread.start()
            return
        raise WorkdirLocked(f"{self.path}: could not take the lock (others keep creating it)")

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.stale_after_s / 4):
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        """Stops the heartbeat and removes the lock file if this run still owns it."""
        self._stop.set()
        if not self._held:
            return
        self._held = False
        try:
            with open(self.path) as f:
                holder = json.load(f)
            if holder.get("host") == self.host and holder.get("pid") == self.pid:
                os.remove(self.path)
        except (OSError, ValueError):
            pass
