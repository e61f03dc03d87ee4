"""The periodic job: live performance recomputed every `interval_s` on a thread of its own.

Never on the event loop and never per scrape: a scrape and `GET /monitoring/performance` read
the last snapshot. With several workers (`PROMETHEUS_MULTIPROC_DIR` set) one worker, the holder
of a lock file there, computes and writes the snapshot beside it; the others read that file.
"""

import contextlib
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from app.core.config import MonitoringSettings
from app.db.session import UNAVAILABLE_ERRORS, Database
from app.monitoring.performance import performance
from app.monitoring.reading import read_rows

log = logging.getLogger(__name__)
# Scored this long ago and still no outcome: counted in the backlog.
BACKLOG_DAYS: Final = 45
_LOCK: Final = "triage-performance.lock"
_SNAPSHOT: Final = "triage-performance.json"
_NICENESS: Final = 10


class PerformanceJob:
    """Computes the snapshot now (`run_once`) or every `interval_s` (`start` to `stop`)."""

    def __init__(
        self,
        database: Database,
        settings: MonitoringSettings,
        *,
        references: Mapping[str, Mapping[str, Any]],
        shared_dir: str | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.references = references
        self._shared = Path(shared_dir) if shared_dir else None
        self._snapshot: dict[str, Any] | None = None
        self._read_mtime = 0.0
        self._leader = self._shared is None
        self._lock_file: int | None = None
        self._compute = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> dict[str, Any]:
        """Read every score with its outcome, compute the figures, keep them as the snapshot."""
        now = now or datetime.now(UTC)
        with self._compute:
            started = time.perf_counter()
            with self.database.connect() as connection:
                rows = read_rows(connection, now - timedelta(days=BACKLOG_DAYS))
            versions = performance(
                rows,
                today=now.date(),
                windows_days=self.settings.windows_days,
                min_outcomes=self.settings.min_outcomes,
                references=self.references,
            )
            snapshot = {
                "computed_at": now.isoformat(),
                "interval_s": self.settings.interval_s,
                "job_seconds": time.perf_counter() - started,
                "model_versions": versions,
            }
            self._snapshot = snapshot
            if self._shared is not None and self._leader:
                _write_atomically(self._shared / _SNAPSHOT, snapshot)
            return snapshot

    def snapshot(self) -> dict[str, Any] | None:
        """The last snapshot (this worker's, or the computing worker's file); None before one."""
        if self._shared is not None and not self._leader:
            self._read_shared()
        return self._snapshot

    def start(self) -> None:
        """Run every `interval_s` on a daemon thread, the first run now."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="performance job", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (a computation under way is left to finish on its own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _loop(self) -> None:
        # NOTE: a lower priority for this thread alone (Linux schedules threads as tasks), so
        # the event loop's thread gets the CPU first when both want it.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICENESS)
        while not self._stop.is_set():
            if self._leads():
                try:
                    self.run_once()
                except UNAVAILABLE_ERRORS as exc:
                    log.warning("live performance not computed: database unavailable (%s)", exc)
                except Exception:
                    log.exception("live performance not computed")
            self._stop.wait(self.settings.interval_s)

    def _leads(self) -> bool:
        """Whether this worker computes: always alone, else while it holds the lock file."""
        if self._leader or self._shared is None:
            return True
        fd = os.open(self._shared / _LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_file, self._leader = fd, True
        return True

    def _read_shared(self) -> None:
        assert self._shared is not None
        path = self._shared / _SNAPSHOT
        with contextlib.suppress(OSError, ValueError):
            mtime = path.stat().st_mtime
            if mtime != self._read_mtime:
                self._snapshot = json.loads(path.read_text())
                self._read_mtime = mtime


def _write_atomically(path: Path, snapshot: Mapping[str, Any]) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(snapshot))
    os.replace(temporary, path)
