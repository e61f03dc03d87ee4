"""One place that turns errors into HTTP answers."""

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.schemas import PATTERN_MESSAGES
from app.core.errors import AppError, UnauthorizedError, UnavailableError

log = logging.getLogger("triage.api")


def field_path(loc: Sequence[Any]) -> str:
    """`('body', 'encounters', 3, 'age')` -> `encounters[3].age`."""
    parts = list(loc[1:]) if loc and loc[0] in ("body", "query", "path") else list(loc)
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


async def app_error(_request: Request, exc: Exception) -> JSONResponse:
    """Answer an `AppError` with its status and message."""
    assert isinstance(exc, AppError)
    headers: dict[str, str] = {}
    if isinstance(exc, UnavailableError):
        headers["Retry-After"] = str(exc.retry_after_s)
        log.warning("unavailable", extra={"reason": type(exc.__cause__ or exc).__name__})
    if isinstance(exc, UnauthorizedError):
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)


def _message(error: Mapping[str, Any]) -> str:
    """The error's message, in plain words where it would quote a regular expression, and
    with the decoder's reason where FastAPI would say only "JSON decode error"."""
    if error.get("type") == "json_invalid":
        return f"Invalid JSON: {(error.get('ctx') or {}).get('error', 'cannot be decoded')}"
    if error.get("type") == "string_pattern_mismatch":
        plain = PATTERN_MESSAGES.get((error.get("ctx") or {}).get("pattern", ""))
        if plain is not None:
            return plain
    return str(error.get("msg", "invalid"))


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    """A 422 naming each bad field; input values are not echoed (they are patient data)."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        loc = error.get("loc", ())
        if error.get("type") == "json_invalid":  # NOTE: FastAPI puts the offset in its `loc`
            loc = ("body",)
        entry: dict[str, Any] = {"field": field_path(loc), "message": _message(error)}
        entry["type"] = error.get("type")
        batched = loc[:2] in (("body", "encounters"), ("body", "outcomes"))
        if len(loc) > 2 and batched and isinstance(loc[2], int):
            entry["index"] = loc[2]
        errors.append(entry)
    log.info("rejected request", extra={"fields": [e["field"] for e in errors][:20]})
    body: dict[str, Any] = {
        "detail": "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        "errors": errors,
    }
    indices = sorted({e["index"] for e in errors if "index" in e})
    if indices:
        body["index"] = indices[0]
    return JSONResponse(body, status_code=422)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
