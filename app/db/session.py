"""The database engine and sessions: one `Database` per process, opened in the lifespan."""

import asyncio
import contextlib
import contextvars
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from app.core.errors import BadRequestError, SchemaMissingError, UnavailableError

T = TypeVar("T")

# NOTE: room for the database calls of many requests at once without overflow connections,
# which are closed after use and, on SQLite, re-run the connect PRAGMAs each time.
POOL_SIZE = 20
MAX_OVERFLOW = 20
# NOTE: threads for `Database.run`. A hung connection holds its thread until the server's
# statement timeout, or forever when the server is frozen, so there is room for many.
RUN_THREADS = 40

# Errors that mean "the database cannot take this now" rather than "this request is wrong".
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError, PoolTimeoutError)


_UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a table that does not exist


def _has_no_table(exc: Exception) -> bool:
    """Tell whether the database said a table does not exist (it was never migrated)."""
    orig = getattr(exc, "orig", None)  # NOTE: a pool timeout carries no driver error
    if orig is None:
        return False
    return getattr(orig, "sqlstate", None) == _UNDEFINED_TABLE or "no such table" in str(orig)


def shown_url(url: str) -> str:
    """`url` as it may be shown: the password hidden, a SQLite file's path made absolute."""
    parsed = make_url(url)
    if _is_file_url(url) and parsed.database and not parsed.database.startswith("file:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return parsed.render_as_string(hide_password=True)


def make_engine(
    url: str, *, timeout_s: float, pool_size: int = POOL_SIZE, max_overflow: int = MAX_OVERFLOW
) -> Engine:
    """Create an engine whose connects and statements give up after `timeout_s`; on PostgreSQL
    it holds at most `pool_size + max_overflow` connections."""
    connect_args: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        connect_args = {"timeout": timeout_s, "check_same_thread": False}
        if _is_file_url(url):
            _create_private(make_url(url))
            # NOTE: a file connection cannot go stale, so no per-checkout ping is needed.
            kwargs.update(pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)
        else:
            kwargs["pool_pre_ping"] = True
    else:
        ms = int(timeout_s * 1000)
        connect_args = {
            "connect_timeout": max(1, int(timeout_s)),
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        }
        # NOTE: the ping finds the dead connections a restarted server leaves in the pool.
        kwargs.update(
            pool_timeout=timeout_s,
            pool_pre_ping=True,
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
    engine = create_engine(url, connect_args=connect_args, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _create_private(url: URL) -> None:
    """Create a missing SQLite file readable by its owner only: it holds encounters.

    SQLite gives its -wal and -shm files the database file's permissions. A `file:` URI is left
    to SQLite, and so is a missing folder: the first connect reports it as unavailable.
    """
    if url.query.get("uri") or not url.database:
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(url.database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _is_file_url(url: str) -> bool:
    """Tell whether a SQLite URL names a file (not the in-memory database)."""
    database = make_url(url).database
    return bool(database) and database != ":memory:" and "mode=memory" not in url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # NOTE: WAL lets readers (review queue, metrics scrape) run while a predict commits.
    if not _is_memory(dbapi_connection):
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _is_memory(dbapi_connection: Any) -> bool:
    cursor = dbapi_connection.cursor()
    rows = cursor.execute("PRAGMA database_list").fetchall()
    cursor.close()
    return any(row[1] == "main" and not row[2] for row in rows)


class Database:
    """An engine plus a session factory."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        pool_size: int = POOL_SIZE,
        max_overflow: int = MAX_OVERFLOW,
    ) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.engine = make_engine(
            url, timeout_s=timeout_s, pool_size=pool_size, max_overflow=max_overflow
        )
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        # NOTE: SQLite has one writer at a time, and a writer that finds the file locked sleeps
        # before retrying, which set the tail latency. Writers of this process queue on a lock
        # instead; PostgreSQL needs none.
        self._write_lock = threading.Lock() if url.startswith("sqlite") else None
        # NOTE: kept apart by mode: a connection's autocommit setting is fixed when it is kept.
        self._kept: dict[bool, deque[Connection]] = {False: deque(), True: deque()}
        self._threads = ThreadPoolExecutor(RUN_THREADS, thread_name_prefix="database")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that rolls back on error and maps connection failures to 503."""
        # NOTE: closing the session (on the way out, before the mapping) rolls it back.
        with self._mapped_errors("stored"), self.sessionmaker() as session:
            yield session

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A pooled connection (lighter than a session for one read), errors mapped to 503."""
        with self._mapped_errors("used"), self.engine.connect() as connection:
            yield connection

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        """Hold this process's write turn for the block (SQLite only; a no-op elsewhere)."""
        if self._write_lock is None:
            yield
            return
        if not self._write_lock.acquire(timeout=self.timeout_s):
            raise UnavailableError("the database is busy; retry shortly")
        try:
            yield
        finally:
            self._write_lock.release()

    @property
    def dialect(self) -> str:
        """The backend's name: `sqlite` or `postgresql`."""
        return self.engine.dialect.name

    def write(self, work: Callable[[Connection], T], *, autocommit: bool = False) -> T:
        """Run `work` in a transaction on a connection kept for writes, commit, return its result.

        With `autocommit`, each statement of `work` commits on its own and no BEGIN or COMMIT is
        sent (two round trips fewer on PostgreSQL): only for work whose statements are each
        atomic by themselves.

        NOTE: the review writer commits a few cases hundreds of times a second. A session and
        a pool checkout (with its ping on PostgreSQL) cost more CPU than the commit itself, on
        the interpreter lock the event loop needs, so writers keep their connections instead.
        A kept connection the server dropped (a restart) is replaced and `work` run once more,
        so `work` must be safe to repeat. Errors map to 503 and 400 as in `session`.
        """
        with self._write_turn(), self._mapped_errors("stored"):
            try:
                return self._on_kept_connection(work, autocommit)
            except DBAPIError as exc:
                if not exc.connection_invalidated:
                    raise
                return self._on_kept_connection(work, autocommit)

    def _on_kept_connection(self, work: Callable[[Connection], T], autocommit: bool) -> T:
        kept = self._kept[autocommit]
        try:
            connection = kept.pop()
        except IndexError:
            connection = self.engine.connect()
            if autocommit:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        try:
            result = work(connection)
            connection.commit()
        except BaseException:
            _discard_or_keep(connection, kept)
            raise
        kept.append(connection)
        return result

    @contextmanager
    def _mapped_errors(self, verb: str) -> Iterator[None]:
        try:
            yield
        except ProgrammingError as exc:
            if _has_no_table(exc):  # PostgreSQL
                raise SchemaMissingError(shown_url(self.url)) from exc
            raise
        except UNAVAILABLE_ERRORS as exc:
            if _has_no_table(exc):  # SQLite says so with an OperationalError
                raise SchemaMissingError(shown_url(self.url)) from exc
            raise UnavailableError("the database is unavailable; retry shortly") from exc
        except DataError as exc:
            # NOTE: a value the database refuses (PostgreSQL: a NUL character in text) is the
            # caller's input, not a server fault.
            raise BadRequestError(
                f"a value in the request cannot be {verb} (for example a NUL character)"
            ) from exc

    async def run(self, work: Callable[..., T], *args: Any) -> T:
        """Run blocking database work off the event loop; 503 if it outlasts the timeout.

        The server enforces `statement_timeout`, so a server that hangs (frozen, partitioned)
        never answers; the caller gets its 503 in time and the thread is left to finish later.
        """
        # NOTE: straight to an executor thread, not through anyio's: its two checkpoints cost two
        # event-loop turns, a few ms each under load, before the thread even starts, and every
        # flagged answer waits for one of these calls.
        call = partial(contextvars.copy_context().run, work, *args)
        try:
            async with asyncio.timeout(self.timeout_s):
                return await asyncio.get_running_loop().run_in_executor(self._threads, call)
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc

    def ping(self) -> bool:
        """Tell whether the database answers a trivial query."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except UNAVAILABLE_ERRORS:
            return False
        return True

    def dispose(self) -> None:
        """Close every pooled and kept connection."""
        self._threads.shutdown(wait=False)
        for kept in self._kept.values():
            while kept:
                kept.pop().close()
        self.engine.dispose()


def _discard_or_keep(connection: Connection, kept: deque[Connection]) -> None:
    """After a failed transaction: keep a connection that rolls back cleanly, close any other."""
    if not connection.invalidated:
        try:
            connection.rollback()
        except DBAPIError:
            pass
        else:
            kept.append(connection)
            return
    connection.close()
