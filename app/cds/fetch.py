"""Fetch from the EHR's FHIR server what a hook's prefetch lacks (CDS Hooks 2.0 `fhirServer`).

Only servers on `TRIAGE_CDS__FHIR_SERVERS` are read, so a hook cannot point the service at an
arbitrary host; search pages are followed only while they stay on that server.
"""

import asyncio
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import quote

import httpx

from app.cds.discovery import PREFETCH
from app.core.errors import AppError, UnavailableError

MAX_PAGES: Final = 20
"""Most pages of one search followed; a longer answer is refused rather than read for ever."""
RETRY_AFTER_S: Final = 5

ClientFactory = Callable[[float], httpx.AsyncClient]


def default_client(timeout_s: float) -> httpx.AsyncClient:
    """A plain httpx client; tests put a factory with a mock transport on `app.state` instead."""
    return httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)


class FetchError(AppError):
    """The FHIR server could not give a resource: the EHR must fix access or send prefetch."""

    status_code = 412


class FhirServerError(AppError):
    """The FHIR server answered with an error of its own (CDS Hooks: an HTTP error back)."""

    status_code = 502


def allowed_server(server: str | None, allowed: list[str]) -> str:
    """The base URL to read from, or a 412 naming why it may not be read."""
    if server is None:
        raise FetchError(
            "prefetch: missing (or incomplete) and no fhirServer to fetch it from; send the"
            " resources of the prefetch templates in GET /cds-services"
        )
    base = server.rstrip("/")
    if base not in {s.rstrip("/") for s in allowed}:
        raise FetchError(
            f"fhirServer {server[:200]!r} is not in TRIAGE_CDS__FHIR_SERVERS; send prefetch or"
            " ask the operator to list the server"
        )
    return base


def bearer(authorization: dict[str, Any] | None) -> str:
    """The `Authorization` header of a CDS Hooks `fhirAuthorization` (412 when unusable)."""
    token = (authorization or {}).get("access_token")
    kind = str((authorization or {}).get("token_type", "")).lower()
    if not isinstance(token, str) or not token or kind != "bearer":
        raise FetchError(
            "fhirAuthorization: missing or without a Bearer access_token; the FHIR server"
            " cannot be read without it (send prefetch instead)"
        )
    return f"Bearer {token}"


def query(key: str, context: dict[str, str | None]) -> str:
    """The discovery template of `key` with the context's ids filled in (URL-quoted)."""
    template = PREFETCH[key]
    for name, value in context.items():
        slot = "{{context." + name + "}}"
        if slot in template:
            if not value:
                raise AppError(f"context.{name}: missing; needed to fetch {key!r}", 400)
            template = template.replace(slot, quote(value, safe=""))
    return template


async def fetch_missing(
    prefetch: dict[str, Any] | None,
    context: dict[str, str | None],
    server: str | None,
    authorization: dict[str, Any] | None,
    allowed: list[str],
    timeout_s: float,
    client_factory: ClientFactory,
) -> dict[str, Any]:
    """The prefetch completed with every missing key read from the FHIR server."""
    have = dict(prefetch or {})
    missing = [k for k in PREFETCH if k not in have]
    if not missing:
        return have
    base = allowed_server(server, allowed)
    headers = {"Authorization": bearer(authorization), "Accept": "application/fhir+json"}
    queries = {k: query(k, context) for k in missing}
    async with client_factory(timeout_s) as client:
        got = await asyncio.gather(
            *(_read(client, base, key, q, headers) for key, q in queries.items()),
            return_exceptions=True,
        )
    for result in got:
        if isinstance(result, BaseException):
            raise result
    return have | dict(zip(queries, got, strict=True))


async def _read(
    client: httpx.AsyncClient, base: str, key: str, path: str, headers: dict[str, str]
) -> dict[str, Any]:
    """One prefetch key: the resource, or the search's pages merged into one Bundle."""
    url: str | None = f"{base}/{path}"
    pages: list[dict[str, Any]] = []
    while url is not None:
        if len(pages) == MAX_PAGES:
            raise FetchError(f"{path}: more than {MAX_PAGES} pages; send {key!r} as prefetch")
        page = await _get(client, base, path, url, headers)
        pages.append(page)
        url = _next(page, base, path) if page.get("resourceType") == "Bundle" else None
    first = pages[0]
    if len(pages) == 1:
        return first
    entries = [e for p in pages for e in p.get("entry") or []]
    return {k: v for k, v in first.items() if k != "link"} | {"entry": entries}


async def _get(
    client: httpx.AsyncClient, base: str, path: str, url: str, headers: dict[str, str]
) -> dict[str, Any]:
    """GET one FHIR URL: 503 when the server cannot be reached, 412/502 when it refuses."""
    try:
        response = await client.get(url, headers=headers)
    except httpx.TimeoutException as exc:
        raise UnavailableError(
            f"FHIR server {base} timed out reading {path}; retry", RETRY_AFTER_S
        ) from exc
    except httpx.TransportError as exc:
        raise UnavailableError(
            f"FHIR server {base} unreachable reading {path} ({type(exc).__name__}); retry",
            RETRY_AFTER_S,
        ) from exc
    status = response.status_code
    if status in (401, 403, 404):
        raise FetchError(
            f"FHIR server {base} answered {status} for {path}: the fhirAuthorization does not"
            " give it or it does not exist; send prefetch or fix the access token's scope"
        )
    if status != 200:
        raise FhirServerError(f"FHIR server {base} answered {status} for {path}")
    try:
        body = response.json()
    except ValueError as exc:
        raise FhirServerError(f"FHIR server {base} answered {path} with no JSON") from exc
    if not isinstance(body, dict):
        raise FhirServerError(f"FHIR server {base} answered {path} with no FHIR resource")
    return body


def _next(bundle: dict[str, Any], base: str, path: str) -> str | None:
    """The Bundle's next page, which must stay on the same server."""
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next":
            url = link.get("url")
            if not isinstance(url, str) or not url.startswith(base + "/"):
                raise FhirServerError(f"{path}: next page {str(url)[:200]!r} is not on {base}")
            return url
    return None
