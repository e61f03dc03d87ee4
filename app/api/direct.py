"""The scoring routes called straight from the ASGI stack, past FastAPI's router.

NOTE: on this service's hardware, FastAPI's routing, request wrapping and dependency machinery
cost more than parsing, scoring and answering one `/predict`: a plain ASGI endpoint that parses
the same body served about 22,800 requests/s, the same endpoint as a FastAPI route about
6,400. The scoring routes take only the `Request` and do their own checks, so this middleware
calls them directly for a POST on their exact path. Everything else, including other methods
on those paths and the OpenAPI document, goes through the router as before. Errors are
answered by the app's own exception handlers, found as Starlette finds them, so an answer is
the same either way (`tests/api/test_direct.py`).
"""

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send


class DirectRoutes:
    """Call the endpoints of `routes` (routes that take only a `Request`) for a POST."""

    def __init__(self, app: ASGIApp, *, routes: Iterable[APIRoute]) -> None:
        self.app = app
        self.routes: Mapping[str, APIRoute] = {
            r.path: r for r in routes if r.methods and "POST" in r.methods
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = None
        # NOTE: behind a root path the router does the path arithmetic; so does a non-POST.
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            route = self.routes.get(scope["path"])
        if route is None:
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # the template the request metrics and log line are labelled by
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request)
        except Exception as exc:
            handler = exception_handler(scope["app"].exception_handlers, exc)
            if handler is None:
                raise
            response = handler(request, exc)
            if inspect.isawaitable(response):
                response = await response
        await response(scope, receive, send)


def exception_handler(handlers: Mapping[Any, Any], exc: Exception) -> Any:
    """The handler Starlette's exception middleware would pick for `exc`, or None.

    NOTE: Starlette's own lookup is private (`starlette._exception_handler`) and covers the
    class only; the status-code handlers are looked up first there too.
    """
    if isinstance(exc, HTTPException) and exc.status_code in handlers:
        return handlers[exc.status_code]
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
