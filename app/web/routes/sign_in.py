"""The clinician review page's sign-in and sign-out (HTML).

Sessions live in the database (`app.auth.sessions`), so sign-out ends every copy of the
cookie. Every POST needs the session's CSRF token and a same-site origin.
"""

from typing import Annotated, Final

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import SessionDep
from app.api.page_auth import PageAuth, PageAuthDep, refused_post
from app.auth.models import Role
from app.auth.service import authenticate
from app.auth.sessions import end_session, start_session
from app.core.errors import UnauthorizedError
from app.web.auth import PAGE_ROLES, home_for, refusal_for
from app.web.render import render
from app.web.session import clear_cookie, set_cookie

router = APIRouter(prefix="/review", include_in_schema=False)

MAX_KEY: Final = 200


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, auth: PageAuthDep) -> Response:
    """The sign-in form (a signed-out session cookie carries its CSRF token)."""
    if auth.principal is not None:
        return RedirectResponse(home_for(auth.principal.role), status_code=303)
    return _sign_in_form(request, auth, error=None, status_code=200)


def _sign_in_form(
    request: Request, auth: PageAuth, *, error: str | None, status_code: int
) -> HTMLResponse:
    web = auth.web if auth.web is not None and auth.web.key_id is None else None
    web = web or auth.signer.new_session(None)
    fresh = PageAuth(auth.signer, web, None, auth.secure)
    context = {"auth": fresh, "title": "Sign in", "error": error}
    response = render(request, "sign_in.html", context, status_code=status_code)
    set_cookie(response, auth.signer, web, secure=auth.secure)
    return response


@router.post("/sign-in", response_class=HTMLResponse)
def sign_in(
    request: Request,
    auth: PageAuthDep,
    session: SessionDep,
    api_key: Annotated[str, Form(max_length=MAX_KEY)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Check a clinician or admin key and start a signed session; other roles are refused."""
    refused = refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    try:
        principal = authenticate(session=session, key=api_key.strip())
    except UnauthorizedError:
        message = "That key was not recognised, or it has been revoked."
        return _sign_in_form(request, auth, error=message, status_code=401)
    if principal.role not in PAGE_ROLES or principal.key_id is None:
        return _sign_in_form(
            request, auth, error=refusal_for(Role(principal.role)), status_code=403
        )
    response = RedirectResponse(home_for(Role(principal.role)), status_code=303)
    # NOTE: a fresh nonce at sign-in, so a token seen before sign-in is worthless after it.
    key_id = principal.key_id
    web = auth.signer.new_session(key_id)
    start_session(session=session, key_id=key_id, session_id=web.nonce, expires=web.expires)
    set_cookie(response, auth.signer, web, secure=auth.secure)
    return response


@router.post("/sign-out")
def sign_out(
    request: Request,
    auth: PageAuthDep,
    session: SessionDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """End the session in the database (every copy of the cookie dies) and clear the cookie."""
    refused = refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    if auth.web is not None and auth.web.key_id is not None:
        end_session(session=session, session_id=auth.web.nonce)
    response = RedirectResponse("/review/sign-in", status_code=303)
    clear_cookie(response, secure=auth.secure)
    return response
