"""Session cookies and CSRF tokens: signing, tampering, expiry, binding, cookie flags, origin;
server-side sessions: sign-out and key revocation end every copy of a cookie."""

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from app.web.session import COOKIE_NAME, SessionSigner, clear_cookie, same_origin, set_cookie
from tests.web.conftest import SESSION_SECRET, make_keys
from tests.web.test_pages import csrf, flag_one, sign_in

SECRET = "a-test-secret-that-is-long-enough"


def test_round_trip_keeps_key_id_expiry_and_nonce() -> None:
    signer = SessionSigner(SECRET)
    session = signer.new_session(42, now=1_000)
    assert signer.loads(signer.dumps(session), now=1_001) == session
    assert session.expires == 1_000 + 8 * 3600


def test_tampered_or_foreign_cookies_are_rejected() -> None:
    signer = SessionSigner(SECRET)
    value = signer.dumps(signer.new_session(42, now=1_000))
    body, signature = value.split(".")
    forged = SessionSigner(SECRET).dumps(signer.new_session(7, now=1_000)).split(".")[0]
    assert signer.loads(f"{forged}.{signature}", now=1_001) is None  # someone else's body
    assert signer.loads(f"{body}.{signature[:-2]}AA", now=1_001) is None
    assert SessionSigner("another-secret-of-enough-length").loads(value, now=1_001) is None
    for junk in (None, "", "abc", "a.b.c", "!!.??", f"{body}."):
        assert signer.loads(junk, now=1_001) is None


def test_expired_cookies_are_rejected() -> None:
    signer = SessionSigner(SECRET)
    session = signer.new_session(42, now=1_000)
    assert signer.loads(signer.dumps(session), now=session.expires) is None


def test_csrf_token_is_bound_to_one_session() -> None:
    signer = SessionSigner(SECRET)
    one, two = signer.new_session(1), signer.new_session(1)
    token = signer.csrf_token(one)
    assert signer.csrf_valid(one, token)
    assert not signer.csrf_valid(two, token)
    assert not signer.csrf_valid(None, token)
    assert not signer.csrf_valid(one, "")
    assert not signer.csrf_valid(one, None)
    # A cookie signature is not a CSRF token (separately derived keys).
    assert signer.dumps(one).split(".")[1] != token


def test_cookie_flags_follow_settings() -> None:
    signer = SessionSigner(SECRET)
    for secure in (True, False):
        response = Response()
        set_cookie(response, signer, signer.new_session(3), secure=secure)
        header = response.headers["set-cookie"]
        assert header.startswith(f"{COOKIE_NAME}=")
        assert "HttpOnly" in header and "SameSite=strict" in header and "Path=/review" in header
        assert ("Secure" in header) is secure
    cleared = Response()
    clear_cookie(cleared, secure=True)
    assert "Max-Age=0" in cleared.headers["set-cookie"]


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "headers": raw, "app": SimpleNamespace()})


def test_origin_check() -> None:
    host = {"host": "triage.hospital.example"}
    assert same_origin(_request(host))
    assert same_origin(_request({**host, "origin": "https://triage.hospital.example"}))
    assert not same_origin(_request({**host, "origin": "https://evil.example"}))
    assert not same_origin(_request({**host, "origin": "null"}))
    assert not same_origin(_request({**host, "sec-fetch-site": "cross-site"}))
    assert same_origin(_request({**host, "sec-fetch-site": "same-origin"}))


# ------------------------------------------------ server-side sessions, on both backends


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """Unlike the other page tests, these run on SQLite and PostgreSQL: sessions are rows."""
    from tests.support import migrate_to_head

    return migrate_to_head(empty_database_url)


@pytest.fixture
def page_keys(app: Any) -> dict[str, str]:
    """Plain keys per role."""
    return make_keys(app)


def _client(app: Any, cookie: str | None = None) -> httpx.AsyncClient:
    """A browser of its own; `cookie` is a session cookie value copied from another one."""
    cookies = {COOKIE_NAME: cookie} if cookie is not None else None
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://triage.test", cookies=cookies)


def _admin(keys: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {keys['admin']}"}


def _key_id(app: Any, name: str) -> int:
    from sqlalchemy import select

    from app.auth.models import ApiKey

    with app.state.database.session() as session:
        return int(session.scalars(select(ApiKey.id).where(ApiKey.name == name)).one())


@pytest.mark.data
async def test_a_cookie_copied_before_sign_out_is_refused_after_it(
    app, page_keys, encounters
) -> None:
    async with _client(app) as ada:
        item_id = await flag_one(ada, page_keys, encounters)
        await sign_in(ada, page_keys["clinician"])
        token = csrf((await ada.get("/review")).text)
        copied = ada.cookies[COOKIE_NAME]
        async with _client(app, copied) as thief:
            assert (await thief.get("/review")).status_code == 200  # a live copy works
            signed_out = await ada.post("/review/sign-out", data={"csrf_token": token})
            assert signed_out.status_code == 303
            page = await thief.get("/review")
            assert page.status_code == 303 and page.headers["location"] == "/review/sign-in"
            claim = await thief.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
            assert claim.status_code == 303 and claim.headers["location"] == "/review/sign-in"
            assert (await thief.get("/review/list")).status_code == 401
    api = await _api_item(app, page_keys, item_id)
    assert api["status"] == "pending" and api["assignee_key_id"] is None


@pytest.mark.data
async def test_signing_out_ends_only_that_session(app, page_keys) -> None:
    async with _client(app) as desk, _client(app) as ward:
        await sign_in(desk, page_keys["clinician"])
        await sign_in(ward, page_keys["clinician"])
        token = csrf((await desk.get("/review")).text)
        await desk.post("/review/sign-out", data={"csrf_token": token})
        assert (await desk.get("/review")).status_code == 303
        assert (await ward.get("/review")).status_code == 200


@pytest.mark.data
async def test_revoking_the_key_ends_its_sessions(app, page_keys, encounters) -> None:
    async with _client(app) as ada:
        item_id = await flag_one(ada, page_keys, encounters)
        await sign_in(ada, page_keys["clinician"])
        token = csrf((await ada.get("/review")).text)
        key_id = _key_id(app, "Dr Ada Rivera")
        revoked = await ada.post(f"/admin/keys/{key_id}/revoke", headers=_admin(page_keys))
        assert revoked.status_code == 200, revoked.text
        page = await ada.get("/review")
        assert page.status_code == 303 and page.headers["location"] == "/review/sign-in"
        claim = await ada.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
        assert claim.status_code == 303 and claim.headers["location"] == "/review/sign-in"
        again = await sign_in(ada, page_keys["clinician"])
        assert again.status_code == 401 and "revoked" in again.text
    assert (await _api_item(app, page_keys, item_id))["status"] == "pending"


@pytest.mark.data
async def test_a_correctly_signed_cookie_without_a_session_is_refused(app, page_keys) -> None:
    """A cookie signed with the secret is not enough: the session must exist (forged, or
    issued before sessions were kept)."""
    signer = SessionSigner(SESSION_SECRET)
    forged = signer.dumps(signer.new_session(_key_id(app, "Dr Ada Rivera")))
    async with _client(app, forged) as visitor:
        page = await visitor.get("/review")
        assert page.status_code == 303 and page.headers["location"] == "/review/sign-in"


@pytest.mark.data
async def test_the_page_shows_the_signed_in_key_with_its_id(app, page_keys) -> None:
    async with _client(app) as ada:
        await sign_in(ada, page_keys["clinician"])
        page = await ada.get("/review")
    assert f"Dr Ada Rivera (key #{_key_id(app, 'Dr Ada Rivera')})" in page.text


async def _api_item(app: Any, keys: dict[str, str], item_id: int) -> dict[str, Any]:
    async with _client(app) as api:
        response = await api.get(f"/review-queue/{item_id}", headers=_admin(keys))
    assert response.status_code == 200, response.text
    item: dict[str, Any] = response.json()
    return item
