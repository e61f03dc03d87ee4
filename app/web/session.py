"""Signed session cookies and CSRF tokens for the review page.

The cookie holds the API key's row id, an expiry and a random nonce, signed with HMAC-SHA256;
never the key itself. The nonce of a signed-in session is also its id in the database
(`app.auth.sessions`), where sign-out ends it. The CSRF token is an HMAC of the nonce, so it is
bound to one session (a synchroniser token the server can recompute instead of storing).
"""

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

COOKIE_NAME: Final = "triage_session"
COOKIE_PATH: Final = "/review"
SESSION_TTL_S: Final = 8 * 60 * 60
"""A signed-in session lasts one shift; a new sign-in is needed after it."""
ANONYMOUS_TTL_S: Final = 60 * 60
"""A signed-out session (only there to protect the sign-in form) lasts an hour."""

_lock = threading.Lock()


@dataclass(frozen=True)
class WebSession:
    """A verified session: the key id (None before sign-in), its expiry and its nonce (its id)."""

    key_id: int | None
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Issue and verify session cookies and CSRF tokens with one secret."""

    def __init__(self, secret: str | bytes) -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        # NOTE: separate derived keys, so a cookie signature can never pass as a CSRF token.
        self._cookie_key = hmac.new(raw, b"triage review session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(raw, b"triage review csrf", hashlib.sha256).digest()

    def new_session(self, key_id: int | None, *, now: float | None = None) -> WebSession:
        """A fresh session (fresh nonce) for `key_id`, or an anonymous one for None."""
        ttl = SESSION_TTL_S if key_id is not None else ANONYMOUS_TTL_S
        moment = time.time() if now is None else now
        return WebSession(key_id, int(moment) + ttl, secrets.token_urlsafe(18))

    def dumps(self, session: WebSession) -> str:
        """The cookie value: base64(payload) + '.' + base64(HMAC-SHA256(payload))."""
        payload = json.dumps(
            {"k": session.key_id, "e": session.expires, "n": session.nonce}, separators=(",", ":")
        ).encode()
        signature = hmac.new(self._cookie_key, payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(signature)}"

    def loads(self, value: str | None, *, now: float | None = None) -> WebSession | None:
        """The session in a cookie value; None when absent, tampered with, malformed or expired."""
        if not value or value.count(".") != 1:
            return None
        body, signature = value.split(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            return None
        expected = hmac.new(self._cookie_key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, given):
            return None
        try:
            data = json.loads(payload)
            key_id, expires, nonce = data["k"], data["e"], data["n"]
        except (ValueError, KeyError, TypeError):
            return None
        if key_id is not None and (not isinstance(key_id, int) or isinstance(key_id, bool)):
            return None
        if not isinstance(expires, int) or not isinstance(nonce, str):
            return None
        if expires <= (time.time() if now is None else now):
            return None
        return WebSession(key_id, expires, nonce)

    def csrf_token(self, session: WebSession) -> str:
        """The CSRF token forms of this session must carry."""
        return _b64(hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).digest())

    def csrf_valid(self, session: WebSession | None, token: str | None) -> bool:
        """Tell whether `token` is this session's CSRF token (constant-time)."""
        if session is None or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session).encode(), token.encode())


def signer_for(request: Request, configured_secret: str | None) -> SessionSigner:
    """The app's signer: from the configured secret, else a random one made once per process."""
    state = request.app.state
    signer: SessionSigner | None = getattr(state, "review_session_signer", None)
    if signer is None:
        with _lock:
            signer = getattr(state, "review_session_signer", None)
            if signer is None:
                signer = SessionSigner(configured_secret or secrets.token_bytes(32))
                state.review_session_signer = signer
    return signer


def set_cookie(
    response: Response, signer: SessionSigner, session: WebSession, *, secure: bool
) -> None:
    """Attach the session cookie: HttpOnly, SameSite=Strict, Secure unless configured off."""
    response.set_cookie(
        COOKIE_NAME,
        signer.dumps(session),
        max_age=max(0, session.expires - int(time.time())),
        path=COOKIE_PATH,
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def clear_cookie(response: Response, *, secure: bool) -> None:
    """Expire the session cookie in the browser."""
    response.delete_cookie(
        COOKIE_NAME, path=COOKIE_PATH, httponly=True, secure=secure, samesite="strict"
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (Origin, Sec-Fetch-Site).

    A request without either header (an old browser, a script) passes; the CSRF token still
    has to match. Hosts are compared without the scheme, so a TLS-terminating proxy in front
    of the service does not make every form fail.
    """
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin != "null" and bool(host) and urlsplit(origin).netloc.lower() == host.lower()
