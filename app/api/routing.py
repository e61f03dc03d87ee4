"""`CallerFirstRoute`: a route that refuses its caller, then a body that is not JSON, before
FastAPI reads the body.

FastAPI reads and decodes a route's body before it resolves any dependency, so a caller
without a valid key would learn from a 422 what is wrong with its body, and a body sent as
text would be a 422 about its shape rather than a 415 about its type.
"""

import json
from collections.abc import Callable, Coroutine
from email.message import Message
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic_core import from_json

from app.api.deps import Require, authorize
from app.core.errors import UnsupportedMediaTypeError


def _is_json(content_type: str) -> bool:
    """Whether `content_type` is `application/json` or an `application/*+json` type."""
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _JsonRequest(Request):
    """A request whose JSON body pydantic-core decodes.

    NOTE: Python's decoder fails on a number of over 4,300 digits or deep nesting with errors
    FastAPI answers as a bare 400; these are invalid JSON (a 422 naming the body) here.
    """

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body)
            except ValueError as exc:
                raise json.JSONDecodeError(str(exc), body.decode(errors="replace"), 0) from None
        return self._json


class CallerFirstRoute(APIRoute):
    """Checks the route's `Require` dependencies (401/403), then the Content-Type (415: a body
    without one is read as JSON), then answers as any route does.

    The caller is looked up once per request, so the dependency itself only re-checks the role.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        answer = super().get_route_handler()
        requirements = [d.call for d in self.dependant.dependencies if isinstance(d.call, Require)]

        async def handler(request: Request) -> Response:
            request = _JsonRequest(request.scope, request.receive)
            for requirement in requirements:
                await authorize(request, *requirement.roles)
            content_type = request.headers.get("content-type")
            if content_type and not _is_json(content_type):
                raise UnsupportedMediaTypeError(
                    "the body must be JSON (Content-Type: application/json),"
                    f" not {content_type[:64]!r}"
                )
            return await answer(request)

        return handler
