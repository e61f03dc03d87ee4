"""The clinician review page (HTML): sign in with a clinician key, work the queue.

Routes only: listing, claiming and resolving go through `app.review.service`, as the JSON API
does. Every POST needs the session's CSRF token and a same-site origin.
"""

from dataclasses import dataclass
from typing import Annotated, Any, Final, get_args

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api.deps import SessionDep, SettingsDep
from app.auth.models import Role
from app.auth.service import Principal, authenticate
from app.core.errors import AppError, UnauthorizedError
from app.review import service
from app.review.models import Outcome, ReviewStatus
from app.review.schemas import SortKey
from app.web.auth import PAGE_ROLE, principal_for_key_id, refusal_for
from app.web.present import OUTCOME_WORDS, STATUS_WORDS, case_view, event_view
from app.web.render import render
from app.web.session import (
    COOKIE_NAME,
    SessionSigner,
    WebSession,
    clear_cookie,
    same_origin,
    set_cookie,
    signer_for,
)

router = APIRouter(prefix="/review", include_in_schema=False)

SORT_WORDS: Final = {"std": "Most uncertain first", "newest": "Newest first", "age": "Oldest first"}
# NOTE: offer only the orders the service implements, so the page follows the service's SortKey.
SORTS: Final = {k: v for k, v in SORT_WORDS.items() if k in get_args(SortKey)}
NOTICES: Final = {
    "claimed": "You claimed this case. Review it and record an outcome below.",
    "resolved": "Outcome recorded. The case is resolved.",
}
MAX_NOTE: Final = 4000
MAX_KEY: Final = 200


@dataclass(frozen=True)
class PageAuth:
    """The page's view of the caller: signer, verified cookie session and clinician (if any)."""

    signer: SessionSigner
    web: WebSession | None
    principal: Principal | None
    secure: bool

    def csrf(self) -> str:
        """The CSRF token for forms on this page ('' without a session)."""
        return self.signer.csrf_token(self.web) if self.web is not None else ""


def get_page_auth(request: Request, settings: SettingsDep, session: SessionDep) -> PageAuth:
    """Verify the session cookie and find the clinician it names (re-checked every request)."""
    signer = signer_for(request, settings.auth.session_secret)
    web = signer.loads(request.cookies.get(COOKIE_NAME))
    principal = None
    if web is not None and web.key_id is not None:
        principal = principal_for_key_id(session=session, key_id=web.key_id)
    return PageAuth(signer, web, principal, settings.auth.secure_cookies)


PageAuthDep = Annotated[PageAuth, Depends(get_page_auth)]


def _to_sign_in() -> RedirectResponse:
    return RedirectResponse("/review/sign-in", status_code=303)


def _forbidden(request: Request, auth: PageAuth, message: str) -> HTMLResponse:
    context = {"auth": auth, "title": "Request refused", "message": message}
    return render(request, "error.html", context, status_code=403)


def _refused_post(request: Request, auth: PageAuth, token: str) -> HTMLResponse | None:
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


def _queue_context(
    session: SessionDep, auth: PageAuth, status: str, sort: str, cursor: str | None, size: int
) -> dict[str, Any]:
    wanted = ReviewStatus(status) if status in STATUS_WORDS else None
    order: Any = sort if sort in SORTS else "std"
    items, next_cursor = service.list_items(
        session=session, status=wanted, sort=order, limit=size, cursor=cursor
    )
    return {
        "auth": auth,
        "cases": [case_view(item) for item in items],
        "status": wanted.value if wanted else "",
        "sort": order,
        "cursor": cursor or "",
        "next_cursor": next_cursor,
        "statuses": STATUS_WORDS,
        "sorts": SORTS,
    }


@router.get("", response_class=HTMLResponse)
def queue_page(
    request: Request,
    auth: PageAuthDep,
    session: SessionDep,
    settings: SettingsDep,
    status: str = "",
    sort: str = "std",
    cursor: str | None = None,
) -> Response:
    """The queue: flagged cases with their uncertainty, clinical summary, status and holder."""
    if auth.principal is None:
        return _to_sign_in()
    try:
        context = _queue_context(session, auth, status, sort, cursor, settings.review_page_size)
    except AppError as exc:  # a stale or foreign cursor
        return render(
            request,
            "error.html",
            {"auth": auth, "title": "Cannot show this page", "message": exc.message},
            exc.status_code,
        )
    return render(request, "queue.html", {**context, "title": "Review queue"})


@router.get("/list", response_class=HTMLResponse)
def queue_fragment(
    request: Request,
    auth: PageAuthDep,
    session: SessionDep,
    settings: SettingsDep,
    status: str = "",
    sort: str = "std",
    cursor: str | None = None,
) -> Response:
    """The list alone, for the page's script to refresh in place."""
    if auth.principal is None:
        return HTMLResponse("Signed out", status_code=401, headers={"Cache-Control": "no-store"})
    try:
        context = _queue_context(session, auth, status, sort, cursor, settings.review_page_size)
    except AppError as exc:
        return HTMLResponse(exc.message, status_code=exc.status_code)
    return render(request, "queue_list.html", context)


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, auth: PageAuthDep) -> Response:
    """The sign-in form (a signed-out session cookie carries its CSRF token)."""
    if auth.principal is not None:
        return RedirectResponse("/review", status_code=303)
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
    """Check a clinician key and start a signed session; other roles are refused."""
    refused = _refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    try:
        principal = authenticate(session=session, key=api_key.strip())
    except UnauthorizedError:
        message = "That key was not recognised, or it has been revoked."
        return _sign_in_form(request, auth, error=message, status_code=401)
    if principal.role != PAGE_ROLE:
        return _sign_in_form(
            request, auth, error=refusal_for(Role(principal.role)), status_code=403
        )
    response = RedirectResponse("/review", status_code=303)
    # NOTE: a fresh nonce at sign-in, so a token seen before sign-in is worthless after it.
    set_cookie(response, auth.signer, auth.signer.new_session(principal.key_id), secure=auth.secure)
    return response


@router.post("/sign-out")
def sign_out(
    request: Request, auth: PageAuthDep, csrf_token: Annotated[str, Form(max_length=200)] = ""
) -> Response:
    """End the session: the cookie is cleared."""
    refused = _refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    response = RedirectResponse("/review/sign-in", status_code=303)
    clear_cookie(response, secure=auth.secure)
    return response


def _case_page(
    request: Request,
    auth: PageAuth,
    session: SessionDep,
    item_id: int,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    try:
        item = service.get_item(session=session, item_id=item_id)
    except AppError as exc:
        context = {"auth": auth, "title": "Case not found", "message": exc.message}
        return render(request, "error.html", context, exc.status_code)
    events = service.item_events(session=session, item_id=item_id)
    context = {
        "auth": auth,
        "title": f"Case {item.encounter_id}",
        "case": case_view(item),
        "events": [event_view(e) for e in events],
        "outcomes": OUTCOME_WORDS,
        "error": error,
        "notice": notice,
        "max_note": MAX_NOTE,
    }
    return render(request, "case.html", context, status_code)


@router.get("/cases/{item_id}", response_class=HTMLResponse)
def case_page(
    request: Request, item_id: int, auth: PageAuthDep, session: SessionDep, done: str = ""
) -> Response:
    """One case: the encounter, its uncertainty, the audit trail, and claim or resolve."""
    if auth.principal is None:
        return _to_sign_in()
    return _case_page(request, auth, session, item_id, notice=NOTICES.get(done))


@router.post("/cases/{item_id}/claim", response_class=HTMLResponse)
def claim_case(
    request: Request,
    item_id: int,
    auth: PageAuthDep,
    session: SessionDep,
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Claim a pending case; another clinician's claim wins with a clear message (409)."""
    if auth.principal is None:
        return _to_sign_in()
    refused = _refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    try:
        service.claim(session=session, item_id=item_id, actor=auth.principal.name)
    except AppError as exc:
        return _case_page(
            request, auth, session, item_id, error=exc.message, status_code=exc.status_code
        )
    return RedirectResponse(f"/review/cases/{item_id}?done=claimed", status_code=303)


@router.post("/cases/{item_id}/resolve", response_class=HTMLResponse)
def resolve_case(
    request: Request,
    item_id: int,
    auth: PageAuthDep,
    session: SessionDep,
    outcome: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Record the outcome and note of a case you hold."""
    if auth.principal is None:
        return _to_sign_in()
    refused = _refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    error = None
    if outcome not in OUTCOME_WORDS:
        error = "Choose an outcome: agree, override or needs follow-up."
    elif len(note) > MAX_NOTE:
        error = f"The note is too long: at most {MAX_NOTE} characters."
    if error is not None:
        return _case_page(request, auth, session, item_id, error=error, status_code=422)
    try:
        service.resolve(
            session=session,
            item_id=item_id,
            actor=auth.principal.name,
            outcome=Outcome(outcome),
            note=note.strip() or None,
        )
    except AppError as exc:
        return _case_page(
            request, auth, session, item_id, error=exc.message, status_code=exc.status_code
        )
    return RedirectResponse(f"/review/cases/{item_id}?done=resolved", status_code=303)
