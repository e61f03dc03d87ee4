"""Routes called directly (`DirectRoutes`) answer exactly as through FastAPI's router."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from app.api.body import json_body
from app.api.direct import DirectRoutes
from app.api.errors import install_error_handlers
from app.api.responses import json_response
from app.core.errors import ConflictError, UnavailableError


class Body(BaseModel):
    value: int


def make_app(*, direct: bool) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def teapot(_request: Request, _exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "short and stout"}, status_code=418)

    app.add_exception_handler(418, teapot)  # a handler by status code wins over one by class

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = await json_body(request, Body)
        if body.value == 409:
            raise ConflictError("already claimed")
        if body.value == 503:
            raise UnavailableError("database down", retry_after_s=7)
        if body.value == 418:
            raise HTTPException(418, "teapot")
        if body.value == 500:
            raise RuntimeError("bug")
        return json_response({"value": body.value, "route": request.scope["route"].path})

    if direct:
        app.add_middleware(DirectRoutes, routes=[r for r in app.routes if isinstance(r, APIRoute)])
    return app


CASES: list[tuple[str, Any, dict[str, str]]] = [
    ("answer", {"value": 1}, {}),
    ("validation error", {"value": "one"}, {}),
    ("not JSON", b"value=1", {"content-type": "application/x-www-form-urlencoded"}),
    ("invalid JSON", b"{", {"content-type": "application/json"}),
    ("app error", {"value": 409}, {}),
    ("unavailable", {"value": 503}, {}),
    ("http exception", {"value": 418}, {}),
]


@pytest.mark.parametrize(("body", "headers"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_a_direct_answer_is_the_routers_answer(body: Any, headers: dict[str, str]) -> None:
    answers = []
    for direct in (False, True):
        transport = httpx.ASGITransport(app=make_app(direct=direct))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            if isinstance(body, bytes):
                response = await client.post("/echo", content=body, headers=headers)
            else:
                response = await client.post("/echo", json=body)
        answers.append((response.status_code, dict(response.headers), response.content))
    assert answers[0] == answers[1]


async def test_an_unhandled_error_still_propagates_and_other_methods_use_the_router() -> None:
    transport = httpx.ASGITransport(app=make_app(direct=True), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/echo", json={"value": 500})).status_code == 500
        assert (await client.get("/echo")).status_code == 405
        teapot = await client.post("/echo", json={"value": 418})
        assert teapot.json() == {"detail": "short and stout"}
