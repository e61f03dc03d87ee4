"""The plumbing shared by the service's child processes (scoring, review-queue writer).

Wire format, both ways: `<Q` byte length + one JSON document (pydantic-core: floats
round-trip exactly, and nothing is unpickled). A child reads frames from stdin and writes
them to a private copy of stdout; it leaves SIGINT and SIGTERM to its serving process, which
drains its requests first, and exits when its stdin closes (also when that process dies).
"""

import asyncio
import contextlib
import logging
import os
import signal
import struct
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from pydantic_core import from_json, to_json

from app.core.errors import UnavailableError

log = logging.getLogger(__name__)
_LENGTH = struct.Struct("<Q")


class ChildProcess:
    """A child speaking frames on its stdin and stdout: started, watched and restarted.

    `start` spawns it, sends `greeting` (if any) and waits for its first frame, which is
    returned (`error` raised when the child sends {"error"} or nothing). Every later frame
    goes to `_deliver`; when the child dies or says something unreadable, the answers still
    owed get `_fail_pending`'s 503 and a new child starts, with a growing pause between tries.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        error: type[Exception],
        start_timeout_s: float,
        greeting: Any = None,
    ) -> None:
        self.name = name  # "the scoring process", in messages and logs
        self._command = list(command)
        self._error = error
        self._start_timeout_s = start_timeout_s
        self._greeting = greeting
        self._child: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._restarting: asyncio.Task[None] | None = None
        self._stopping = False
        self._answering = False

    @property
    def alive(self) -> bool:
        """Whether a started child is running and answering."""
        return self._answering

    async def start(self) -> Any:
        """Spawn the child and return its first frame (`error` if it does not start)."""
        self._stopping = False
        child = await asyncio.create_subprocess_exec(
            *self._command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert child.stdin is not None and child.stdout is not None
        if self._greeting is not None:
            child.stdin.write(frame(self._greeting))
        try:
            hello = await asyncio.wait_for(read_frame(child.stdout), self._start_timeout_s)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            await end(child)
            raise self._error(f"{self.name} did not start: {exc!r}") from None
        if "error" in hello:
            await end(child)
            raise self._error(f"{self.name} did not start: {hello['error']}")
        self._child = child
        self._answering = True
        self._reader = asyncio.create_task(self._read_answers(child), name=f"{self.name} answers")
        return hello

    async def stop(self) -> None:
        """Let the child finish what it was sent, then end it."""
        self._stopping = True
        if self._restarting is not None:
            self._restarting.cancel()
        child, self._child = self._child, None
        if child is not None:
            if child.stdin is not None:
                child.stdin.close()
            await end(child)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def _write(self, message: Any) -> None:
        """Write one frame to the child in one call (503 while it is down)."""
        child = self._child
        if not self._answering or child is None or child.stdin is None:
            raise UnavailableError(f"{self.name} is restarting; retry shortly")
        child.stdin.write(frame(message))

    async def _drain(self) -> None:
        """Wait until the child's pipe takes what was written."""
        child = self._child
        # NOTE: a child gone mid-write: its reader fails every pending answer with a 503.
        if child is not None and child.stdin is not None:
            with contextlib.suppress(ConnectionError):
                await child.stdin.drain()

    def _deliver(self, message: Any) -> None:
        """Hand one of the child's answers to whoever waits for it."""
        raise NotImplementedError

    def _fail_pending(self, failure: Exception) -> None:
        """Fail every answer still owed (the child is gone)."""
        raise NotImplementedError

    def _kill(self) -> None:
        """End a hung child like a dead one: its reader fails what it was sent, a new one starts."""
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError):
                self._child.kill()

    async def _read_answers(self, child: asyncio.subprocess.Process) -> None:
        assert child.stdout is not None
        try:
            while True:
                self._deliver(await read_frame(child.stdout))
        except asyncio.IncompleteReadError:
            pass
        except Exception:  # NOTE: not our protocol: end the child, and a new one starts
            log.exception("%s answered something unreadable; ending it", self.name)
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        finally:
            self._answering = False
            self._fail_pending(UnavailableError(f"{self.name} stopped; retry shortly"))
        if not self._stopping:
            code = await child.wait()
            log.error("%s exited (code %s); starting a new one", self.name, code)
            self._restarting = asyncio.create_task(self._restart(), name=f"{self.name} restart")

    async def _restart(self) -> None:
        delay = 0.5
        while not self._stopping:
            try:
                await self.start()
                log.info("%s is back", self.name)
                return
            except self._error:
                log.exception("%s did not restart; trying again", self.name)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


def frame(message: Any) -> bytes:
    """`message` as one frame."""
    body = to_json(message, inf_nan_mode="constants")
    return _LENGTH.pack(len(body)) + body


async def read_frame(stream: asyncio.StreamReader) -> Any:
    """The next frame's message (`asyncio.IncompleteReadError` at the end of the stream)."""
    (length,) = _LENGTH.unpack(await stream.readexactly(_LENGTH.size))
    return from_json(await stream.readexactly(length))


async def end(child: asyncio.subprocess.Process) -> None:
    """Wait for `child` to exit; kill it after 30 s."""
    try:
        await asyncio.wait_for(child.wait(), 30)
    except TimeoutError:
        child.kill()
        await child.wait()


# The child's side.


def child_streams() -> tuple[BinaryIO, BinaryIO]:
    """In a child: (stdin, a private copy of stdout for frames), stop signals ignored.

    NOTE: anything a library prints then lands on stderr instead of corrupting the frames.
    """
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    for number in (signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_IGN)
    return sys.stdin.buffer, out


def next_frame(stream: BinaryIO) -> Any:
    """The next frame's message, read blocking (EOFError at the end of the stream)."""
    (length,) = _LENGTH.unpack(_read_exactly(stream, _LENGTH.size))
    return from_json(_read_exactly(stream, length))


def write_frame(out: BinaryIO, message: Any) -> None:
    """Write one frame and flush it."""
    out.write(frame(message))
    out.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytearray:
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        n = stream.readinto(view[got:])  # type: ignore[attr-defined]
        if not n:
            raise EOFError
        got += n
    return data
