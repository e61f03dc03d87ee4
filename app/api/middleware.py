"""Per-request context: request id, body-size limit, access log, HTTP metrics, plain 500s.

A client that disconnects before its answer is counted and logged as status 499, at INFO.
"""

import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.access import ACCESS_LOGGER, AccessLog, RequestRecord
from app.observability.logging import request_id_var
from app.observability.metrics import Metrics
from app.observability.turn import TurnBuffer

log = logging.getLogger(ACCESS_LOGGER)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# NOTE: nginx's code for "the client closed the connection before the answer": neither a
# server fault nor a refusal, so it is counted apart from both.
CLIENT_CLOSED = 499


class RequestContextMiddleware:
    """Wrap every HTTP request: id, size limit, timing, one log line and metrics."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, max_body_bytes: int) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.access_log = AccessLog(log)
        self._answered: TurnBuffer[RequestRecord] = TurnBuffer(self._record, name="requests")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        start = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "started": False, "received": 0, "gone": False}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["started"] = True
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not state["started"]:
                state["gone"] = True
            elif message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body_bytes:
                    raise HTTPException(413, "request body too large")
            return message

        try:
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.max_body_bytes:
                await self._plain(scope, receive, send_with_id, 413, "request body too large")
            else:
                await self.app(scope, limited_receive, send_with_id)
        except Exception as exc:
            if state["gone"]:  # NOTE: the client's doing, not the service's: no traceback
                log.info("client disconnected before the answer (%s)", type(exc).__name__)
            else:
                log.exception("unhandled error")
                if not state["started"]:
                    await self._plain(scope, receive, send_with_id, 500, "internal server error")
        else:
            if state["gone"]:  # NOTE: FastAPI answers a body cut short itself, to no one
                log.info("client disconnected before the answer (answered %s)", state["status"])
        finally:
            if state["gone"]:
                state["status"] = CLIENT_CLOSED  # whatever the app tried to answer it
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self._answered.add(
                RequestRecord(
                    time.time(),
                    request_id,
                    scope.get("method", ""),
                    route,  # the template, so labels stay bounded
                    state["status"],
                    time.perf_counter() - start,
                )
            )
            request_id_var.reset(token)

    async def _plain(
        self, scope: Scope, receive: Receive, send: Send, status: int, text: str
    ) -> None:
        await JSONResponse({"detail": text}, status_code=status)(scope, receive, send)

    def _record(self, answered: list[RequestRecord]) -> None:
        self.metrics.observe_requests(answered)
        self.access_log.write(answered)
