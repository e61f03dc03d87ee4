"""The periodic job: live performance recomputed every `interval_s`, from a thread of its own.

Never on the event loop and never per scrape: a scrape and `GET /monitoring/performance` read
the last snapshot. Once started, the thread hands each computation to a child process at a
lower priority: reading a million rows builds millions of Python objects, which in the
serving process would hold the interpreter lock the event loop needs. With several workers
(`PROMETHEUS_MULTIPROC_DIR` set) one worker, the holder of a lock file there, computes and
writes the snapshot beside it; the others read that file.
"""

import contextlib
import ctypes
import fcntl
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from sqlalchemy import func, select

from app.core.config import MonitoringSettings
from app.db.session import UNAVAILABLE_ERRORS, Database
from app.monitoring.clinicians import add_clinicians, read_reviewed
from app.monitoring.performance import performance
from app.monitoring.reading import read_rows
from app.outcomes.scored import SCORED

log = logging.getLogger(__name__)
# Scored this long ago and still no outcome: counted in the backlog.
BACKLOG_DAYS: Final = 45
_LOCK: Final = "triage-performance.lock"
_SNAPSHOT: Final = "triage-performance.json"
_NICENESS: Final = 10
_PR_SET_PDEATHSIG: Final = 1
# NOTE: below this many stored scores a computation takes milliseconds and runs in this
# process; a child's start (seconds of imports) would cost more than it saves.
CHILD_FROM_ROWS: Final = 20_000


class PerformanceJob:
    """Computes the snapshot now (`run_once`) or every `interval_s` (`start` to `stop`)."""

    def __init__(
        self,
        database: Database,
        settings: MonitoringSettings,
        *,
        references: Mapping[str, Mapping[str, Any]],
        shared_dir: str | None = None,
        child_from_rows: int = CHILD_FROM_ROWS,
    ) -> None:
        self.database = database
        self.settings = settings
        self.references = references
        self.child_from_rows = child_from_rows
        self._shared = Path(shared_dir) if shared_dir else None
        self._snapshot: dict[str, Any] | None = None
        self._read_mtime = 0.0
        self._leader = self._shared is None
        self._lock_file: int | None = None
        self._compute = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: ProcessPoolExecutor | None = None

    def run_once(self, now: datetime | None = None) -> dict[str, Any]:
        """Read every score with its outcome, compute the figures, keep them as the snapshot
        (in the child process once `start` made one and `child_from_rows` scores are stored,
        else in this thread)."""
        now = now or datetime.now(UTC)
        with self._compute:
            started = time.perf_counter()
            task = (now.date(), self.settings.windows_days, self.settings.min_outcomes)
            if self._process is None or self._stored() < self.child_from_rows:
                versions = _versions(self.database, self.references, *task)
            else:
                url = self.database.url
                versions = self._process.submit(_in_child, url, self.references, *task).result()
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

    def _stored(self) -> int:
        with self.database.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(SCORED)) or 0)

    def snapshot(self) -> dict[str, Any] | None:
        """The last snapshot (this worker's, or the computing worker's file); None before one."""
        if self._shared is not None and not self._leader:
            self._read_shared()
        return self._snapshot

    def start(self) -> None:
        """Run every `interval_s` on a daemon thread, the first run now."""
        self._stop.clear()
        if _is_file(self.database):
            # NOTE: spawned, not forked: the serving process holds torch and its threads.
            self._process = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_child_setup,
                initargs=(os.getpid(),),
            )
        self._thread = threading.Thread(target=self._loop, name="performance job", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the thread (a computation under way is left to finish on its own)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._process is not None:
            self._process.shutdown(wait=False, cancel_futures=True)
            self._process = None
        if self._lock_file is not None:
            os.close(self._lock_file)
            self._lock_file = None

    def _loop(self) -> None:
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


def _versions(
    database: Database,
    references: Mapping[str, Mapping[str, Any]],
    today: date,
    windows_days: Sequence[int],
    min_outcomes: int,
) -> dict[str, Any]:
    """The figures of every model version over `database`'s scores and outcomes."""
    with database.connect() as connection:
        rows = read_rows(connection, today - timedelta(days=BACKLOG_DAYS))
        reviewed = read_reviewed(connection)
    versions = performance(
        rows,
        today=today,
        windows_days=windows_days,
        min_outcomes=min_outcomes,
        references=references,
    )
    add_clinicians(
        versions, reviewed, today=today, windows_days=windows_days, min_outcomes=min_outcomes
    )
    return versions


_CHILD_DATABASES: dict[str, Database] = {}


def _in_child(url: str, *args: Any) -> dict[str, Any]:
    """`_versions` in the child process, on a database kept open between runs."""
    database = _CHILD_DATABASES.get(url)
    if database is None:
        database = _CHILD_DATABASES[url] = Database(url)
    return _versions(database, *args)


def _child_setup(parent: int) -> None:
    """The child ends with the job's thread or its process (even a SIGKILL of it), and yields
    the CPU to the serving process when both want it."""
    with contextlib.suppress(OSError, AttributeError):
        # NOTE: Linux's parent-death signal: without it a killed server leaves the child behind.
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)
    with contextlib.suppress(OSError):
        os.nice(_NICENESS)
    # NOTE: where Linux allows it, the child runs only on CPU time nothing else wants.
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _is_file(database: Database) -> bool:
    """Whether another process can open the same database (not SQLite in memory)."""
    url = database.engine.url
    return url.get_backend_name() != "sqlite" or url.database not in (None, "", ":memory:")


def _write_atomically(path: Path, snapshot: Mapping[str, Any]) -> None:
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps(snapshot))
    os.replace(temporary, path)
