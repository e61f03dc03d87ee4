"""The plumbing shared by the service's child processes (scoring, review-queue writer).

Wire format, both ways: `<Q` byte length + one JSON document (pydantic-core: floats
round-trip exactly, and nothing is unpickled). A child reads frames from stdin and writes
them to a private copy of stdout; it leaves SIGINT and SIGTERM to its serving process, which
drains its requests first, and exits when its stdin closes (also when that process dies).
"""

import asyncio
import os
import signal
import struct
import sys
from typing import Any, BinaryIO

from pydantic_core import from_json, to_json

_LENGTH = struct.Struct("<Q")


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
