"""Session cookies and CSRF tokens: signing, tampering, expiry, binding, cookie flags, origin."""

from types import SimpleNamespace

from starlette.requests import Request
from starlette.responses import Response

from app.web.session import COOKIE_NAME, SessionSigner, clear_cookie, same_origin, set_cookie

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
