"""The review page's view of the caller: the signed cookie, its live session, CSRF and origin."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from app.api.deps import SessionDep, SettingsDep
from app.auth.service import Principal
from app.web.auth import PAGE_ROLE, home_for, principal_for
from app.web.render import render
from app.web.session import COOKIE_NAME, SessionSigner, WebSession, same_origin, signer_for


@dataclass(frozen=True)
class PageAuth:
    """The page's view of the caller: signer, verified cookie session and the signed-in
    clinician or admin (if any)."""

    signer: SessionSigner
    web: WebSession | None
    principal: Principal | None
    secure: bool

    @property
    def clinician(self) -> Principal | None:
        """The signed-in key when it may work the queue (a clinician); None for an admin."""
        return self.principal if self.principal and self.principal.role == PAGE_ROLE else None

    def csrf(self) -> str:
        """The CSRF token for forms on this page ('' without a session)."""
        return self.signer.csrf_token(self.web) if self.web is not None else ""


def get_page_auth(request: Request, settings: SettingsDep, session: SessionDep) -> PageAuth:
    """Verify the session cookie and find the key of its live session (every request)."""
    signer = signer_for(request, settings.auth.session_secret)
    web = signer.loads(request.cookies.get(COOKIE_NAME))
    principal = principal_for(session=session, web=web) if web is not None else None
    return PageAuth(signer, web, principal, settings.auth.secure_cookies)


PageAuthDep = Annotated[PageAuth, Depends(get_page_auth)]


def to_sign_in() -> RedirectResponse:
    """Send a signed-out visitor to the sign-in form."""
    return RedirectResponse("/review/sign-in", status_code=303)


def away_from_queue(auth: PageAuth) -> RedirectResponse:
    """Where a visitor who is not a clinician goes: the sign-in form, or an admin's own page."""
    if auth.principal is None:
        return to_sign_in()
    return RedirectResponse(home_for(auth.principal.role), status_code=303)


def _forbidden(request: Request, auth: PageAuth, message: str) -> HTMLResponse:
    context = {"auth": auth, "title": "Request refused", "message": message}
    return render(request, "error.html", context, status_code=403)


def refused_post(request: Request, auth: PageAuth, token: str) -> HTMLResponse | None:
    """A 403 page when a POST fails the origin or CSRF check; None when it passes."""
    if not same_origin(request):
        return _forbidden(request, auth, "This form was sent from another site, so it was refused.")
    if not auth.signer.csrf_valid(auth.web, token):
        return _forbidden(
            request,
            auth,
            "This form has expired or did not come from this page. Reload the page and try again.",
        )
    return None
