"""The predictor in a child process of each serving process, behind an async `predict`.

NOTE: why a process. Scoring on a thread of the serving process shares the interpreter lock
with the event loop. pydantic-core holds it for a whole request body (9 ms for 1,000
encounters) and the engine's NumPy and torch operators give it up and wait to take it back
dozens of times a call, so under load a 1,000-encounter call took 61 ms against 30 ms alone,
and the serving process used 1.05 of the machine's two cores. A child process scores without
that lock; the event loop only writes the validated records to a pipe and reads the answers
(no thread, no lock to wait for). MLServer's parallel inference pool is the same design.

Frames as in `app.core.child_process`:
  first child -> parent: {"model_version", "device", "invariant"} or {"error"}
  parent -> child: [[columns, rows, n_samples, seed], ...], one per (n_samples, seed) group,
                   the records in the encoder's column layout (a quarter of their bytes, and
                   a third of the child's parsing time)
  child -> parent: per group, [[the `Prediction` fields in order], ...]; or {"error"}
The child scores one message at a time, so answers come back in the order they were asked.
"""

import argparse
import asyncio
import logging
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from app.core.child_process import ChildProcess, child_streams, next_frame, write_frame
from app.inference.prediction import prediction_from_json
from app.inference.predictor import (
    Prediction,
    Predictor,
    ScoringRequest,
    group_requests,
    in_request_order,
)
from app.observability.logging import configure_logging

log = logging.getLogger(__name__)
_MODULE = "app.inference.scoring_process"


class ScoringProcessError(RuntimeError):
    """The child could not start, or answered something other than predictions."""


class Hello(NamedTuple):
    """What the child reports once its model is loaded."""

    model_version: str
    device: str
    invariant: bool


class ScoringProcess(ChildProcess):
    """A child process running `Predictor.predict`; start it before use, stop it after."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str,
        default_n_samples: int | None,
        threads: int | None,
        log_level: str = "INFO",
        start_timeout_s: float = 300.0,
        answer_timeout_s: float = 60.0,
    ) -> None:
        command = [sys.executable, "-m", _MODULE, str(model_dir), "--device", device]
        if default_n_samples is not None:
            command += ["--n-samples", str(default_n_samples)]
        if threads is not None:
            command += ["--threads", str(threads)]
        command += ["--log-level", log_level]
        super().__init__(
            command,
            name="the scoring process",
            error=ScoringProcessError,
            start_timeout_s=start_timeout_s,
        )
        self._answer_timeout_s = answer_timeout_s
        self._pending: deque[asyncio.Future[Any]] = deque()

    async def start(self) -> Hello:
        """Spawn the child and wait until its model is loaded (ScoringProcessError if not)."""
        hello = await super().start()
        return Hello(hello["model_version"], hello["device"], bool(hello["invariant"]))

    async def predict(self, requests: Sequence[ScoringRequest]) -> list[Prediction]:
        """Score `requests` in the child, in order (503 while the child is down)."""
        groups = group_requests(requests)
        message = [[g.columns, len(g.indices), g.n_samples, g.seed] for g in groups]
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # NOTE: the frame is written in one call and its future queued with it, so answers
        # (which come back in order) always meet their own request.
        self._write(message)
        self._pending.append(answer)
        await self._drain()
        try:
            timeout = self._answer_timeout_s
            scored = await asyncio.wait_for(asyncio.shield(answer), timeout)
        except TimeoutError:
            log.error("no answer in %s s from the scoring process; ending it", timeout)
            self._kill()
            scored = await answer
        if isinstance(scored, dict):
            raise ScoringProcessError(f"the scoring process failed: {scored.get('error')}")
        predictions = [[prediction_from_json(row) for row in rows] for rows in scored]
        return in_request_order(len(requests), groups, predictions)

    def _deliver(self, message: Any) -> None:
        future = self._pending.popleft()
        if not future.done():  # NOTE: a cancelled caller's answer is dropped
            future.set_result(message)

    def _fail_pending(self, failure: Exception) -> None:
        while self._pending:
            future = self._pending.popleft()
            if not future.done():
                future.set_exception(failure)


# The child.


def _serve(model_dir: Path, device: str, n_samples: int | None, threads: int | None) -> int:
    stdin, out = child_streams()
    try:
        predictor = Predictor.load(
            model_dir, device=device, default_n_samples=n_samples, threads=threads
        )
        invariant = predictor.engine.check_batch_invariance(n_samples=predictor.default_n_samples)
    except Exception as exc:
        write_frame(out, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    device_name = str(getattr(predictor.engine, "device", device))
    write_frame(
        out,
        {"model_version": predictor.model_version, "device": device_name, "invariant": invariant},
    )
    while True:
        try:
            message = next_frame(stdin)
        except EOFError:
            return 0
        try:
            answer: Any = [predictor.score_columns(*group) for group in message]
        except Exception as exc:  # NOTE: one bad batch fails its requests, not the service
            log.exception("scoring failed in the scoring process")
            answer = {"error": type(exc).__name__}
        write_frame(out, answer)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the child: `python -m app.inference.scoring_process MODEL_DIR [options]`."""
    parser = argparse.ArgumentParser(description="Score encounters for a serving process.")
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--n-samples", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    return _serve(args.model_dir, args.device, args.n_samples, args.threads)


if __name__ == "__main__":
    sys.exit(main())
