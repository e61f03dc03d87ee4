"""Tiny ASGI apps the supervisor tests serve: each answer names the worker process."""

import asyncio
import json
import os
from typing import Any

from starlette.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer `{"pid": ...}`; `/slow` takes a second first (a request in flight)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    body = json.dumps({"pid": os.getpid()}).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def broken() -> Any:
    """An app factory that cannot build its app, as with a bad model or configuration."""
    raise RuntimeError("this app cannot start")
