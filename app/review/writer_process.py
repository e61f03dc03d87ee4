"""The review-queue writer in a child process of each serving process, behind an async `write`.

NOTE: why a process. Committed from a thread of the serving process, each group commit's
Python work (building rows, SQLAlchemy, the driver) holds the interpreter lock the event loop
needs, and the thread waits to take it back at every call into the database: under load a
commit of four cases took 4-6 ms instead of 0.5, and two workers spent about 10% of their CPU
beside the loop on it. A child commits without that lock; the event loop only writes the
cases to a pipe and reads the item ids back. The scoring process is the same design.

Frames as in `app.core.child_process`:
  parent -> child, first: {"database_url", "timeout_s"} (not on the command line, where any
                   user of the host could read a password)
  child -> parent, first: {"ready": true} or {"error"}
  parent -> child: [id, [[case, ...] per request]], a flagged case as
                   [encounter_id, encounter, [the `Prediction` fields in order], actor,
                    actor_key_id, hash],
                   an unflagged one as
                   {"unflagged": [encounter_id, model_version, hash, actor, actor_key_id]}
  child -> parent: [id, [item ids (null: unflagged), or the error, per request]]
The child commits on a pool of threads, as the serving process did (a hung connection holds
up only its own commit), so answers come back in any order, each with its frame's id.
"""

import argparse
import asyncio
import contextlib
import itertools
import logging
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from app.core.child_process import ChildProcess, child_streams, next_frame, write_frame
from app.core.errors import BadRequestError, UnavailableError
from app.db.session import RUN_THREADS, Database
from app.inference.prediction import prediction_from_json
from app.observability.logging import configure_logging
from app.review.service import Case, FlaggedCase, UnflaggedCase, store_requests

log = logging.getLogger(__name__)
_MODULE = "app.review.writer_process"


class WriterProcessError(RuntimeError):
    """The child could not start."""


class WriterProcess(ChildProcess):
    """A child process running `store_requests`; start it before use, stop it after."""

    def __init__(
        self,
        database_url: str,
        *,
        timeout_s: float,
        log_level: str = "INFO",
        start_timeout_s: float = 60.0,
    ) -> None:
        super().__init__(
            [sys.executable, "-m", _MODULE, "--log-level", log_level],
            name="the review-queue writer",
            error=WriterProcessError,
            start_timeout_s=start_timeout_s,
            greeting={"database_url": database_url, "timeout_s": timeout_s},
        )
        self._timeout_s = timeout_s
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count()

    async def write(self, requests: Sequence[Sequence[Case]]) -> list[list[int | None] | Exception]:
        """Commit the requests' cases together in the child; per request its ids or its error.

        503 when the child is down or gives no answer within the database timeout; a commit
        that lands later leaves items the EHR's retry finds (the insert is idempotent).
        """
        key = next(self._ids)
        self._write([key, [[_case_to_json(case) for case in cases] for cases in requests]])
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[key] = answer
        try:
            await self._drain()
            async with asyncio.timeout(self._timeout_s):
                answers = await answer
        except TimeoutError as exc:
            raise UnavailableError("the database did not answer in time; retry shortly") from exc
        finally:
            self._pending.pop(key, None)
        return [_answer_from_json(a) for a in answers]

    def _deliver(self, message: Any) -> None:
        key, answers = message
        future = self._pending.pop(key, None)
        if future is not None and not future.done():  # NOTE: a late answer is dropped
            future.set_result(answers)

    def _fail_pending(self, failure: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(failure)
        self._pending.clear()


def _case_to_json(case: Case) -> Any:
    if isinstance(case, UnflaggedCase):
        unflagged = [case.encounter_id, case.model_version, case.content_hash, case.actor]
        return {"unflagged": [*unflagged, case.actor_key_id]}
    return [
        case.encounter_id,
        case.encounter,
        list(case.prediction),
        case.actor,
        case.actor_key_id,
        case.content_hash,
    ]


def _case_from_json(fields: Any) -> Case:
    if isinstance(fields, dict):
        return UnflaggedCase(*fields["unflagged"])
    encounter_id, encounter, prediction, actor, actor_key_id, digest = fields
    return FlaggedCase(
        encounter_id, encounter, prediction_from_json(prediction), actor, actor_key_id, digest
    )


def _answer_to_json(answer: list[int | None] | BaseException) -> Any:
    if isinstance(answer, UnavailableError):
        return {"unavailable": answer.message, "retry_after_s": answer.retry_after_s}
    if isinstance(answer, BadRequestError):
        return {"bad_request": answer.message, "status_code": answer.status_code}
    if isinstance(answer, BaseException):
        return {"error": f"{type(answer).__name__} in the review-queue writer"}
    return answer


def _answer_from_json(answer: Any) -> list[int | None] | Exception:
    if isinstance(answer, list):
        return answer
    if "unavailable" in answer:
        return UnavailableError(answer["unavailable"], answer["retry_after_s"])
    if "bad_request" in answer:
        return BadRequestError(answer["bad_request"], answer["status_code"])
    return RuntimeError(answer["error"])


# The child.


def _serve() -> int:
    stdin, out = child_streams()
    try:
        config = next_frame(stdin)
        database = Database(config["database_url"], timeout_s=config["timeout_s"])
    except Exception as exc:
        write_frame(out, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    write_frame(out, {"ready": True})
    answering = threading.Lock()
    threads = ThreadPoolExecutor(RUN_THREADS, thread_name_prefix="writer")
    while True:
        try:
            key, requests = next_frame(stdin)
        except EOFError:
            break
        threads.submit(_commit, database, key, requests, out, answering)
    threads.shutdown(wait=True)  # NOTE: what was sent is committed before the child exits
    database.dispose()
    return 0


def _commit(
    database: Database, key: int, requests: list[Any], out: BinaryIO, answering: threading.Lock
) -> None:
    answers: list[list[int | None] | Exception]
    try:
        answers = store_requests(database, [[_case_from_json(c) for c in r] for r in requests])
    except UnavailableError as exc:
        log.warning("a group commit of %d requests failed: %s", len(requests), exc)
        answers = [exc] * len(requests)
    except Exception as exc:  # NOTE: one failed commit fails its requests, not the writer
        if not isinstance(exc, BadRequestError):
            log.exception("a group commit of %d requests failed", len(requests))
        answers = [exc] * len(requests)
    with answering, contextlib.suppress(BrokenPipeError):  # NOTE: the parent may be gone
        write_frame(out, [key, [_answer_to_json(a) for a in answers]])


def main(argv: Sequence[str] | None = None) -> int:
    """Run the child: `python -m app.review.writer_process [--log-level L]`."""
    parser = argparse.ArgumentParser(description="Commit flagged cases for a serving process.")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    return _serve()


if __name__ == "__main__":
    sys.exit(main())
