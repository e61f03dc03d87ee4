"""Tiny apps the supervisor tests serve: each answer names the worker process."""

import asyncio
import os
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def _pid(request: Request) -> JSONResponse:
    if request.url.path == "/slow":  # NOTE: a request that stays in flight for a second
        await asyncio.sleep(1.0)
    return JSONResponse({"pid": os.getpid()})


app = Starlette(routes=[Route("/", _pid), Route("/slow", _pid)])


def broken() -> Any:
    """An app factory that cannot build its app, as with a bad model or configuration."""
    raise RuntimeError("this app cannot start")
