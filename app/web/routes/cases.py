"""The clinician review page's queue and cases (HTML): list, claim, release and resolve.

Routes only: listing goes through `app.review.service`, claiming, releasing and resolving
through `app.review.workflow`, as the JSON API does. Every POST needs the session's CSRF
token and a same-site origin.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, get_args

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from app.api.deps import ItemId, SessionDep, SettingsDep
from app.api.page_auth import PageAuth, PageAuthDep, away_from_queue, refused_post
from app.auth.service import Principal
from app.core.errors import AppError, BadRequestError
from app.review import service, workflow
from app.review.models import Outcome, ReviewStatus
from app.review.schemas import SortKey
from app.web.present import case_view, event_view
from app.web.render import render
from app.web.words import OUTCOME_WORDS, STATUS_WORDS

router = APIRouter(prefix="/review", include_in_schema=False)

SORT_WORDS: Final = {"std": "Most uncertain first", "newest": "Newest first", "age": "Oldest first"}
# NOTE: offer only the orders the service implements, so the page follows the service's SortKey.
SORTS: Final = {k: v for k, v in SORT_WORDS.items() if k in get_args(SortKey)}
NOTICES: Final = {
    "claimed": "You claimed this case. Review it and record an outcome below.",
    "resolved": "Outcome recorded. The case is resolved.",
    "released": "You released this case. It is back in the queue for anyone to claim.",
}
MAX_NOTE: Final = 4000
RISK_HELP: Final = "Enter your estimate as a percentage from 0 to 100, such as 25 for 25%."


def clinician_risk(text: str) -> float | None:
    """The form's percentage ('25', '25%', '12,5') as a probability; None when left empty."""
    given = text.strip().removesuffix("%").strip().replace(",", ".")
    if not given:
        return None
    try:
        value = float(given)
    except ValueError:
        raise BadRequestError(
            f"Your risk estimate '{text.strip()}' is not a number. {RISK_HELP}"
        ) from None
    if not 0 <= value <= 100:  # NOTE: also refuses nan; inf fails the range
        raise BadRequestError(f"Your risk estimate must lie between 0% and 100%. {RISK_HELP}")
    return value / 100


@dataclass(frozen=True)
class QueueRequest:
    """What one queue view asks for; listed only once the page knows who is signed in."""

    auth: PageAuth
    session: Session
    status: str
    sort: str
    cursor: str | None
    size: int

    def context(self) -> dict[str, Any]:
        """The listing's template context; an `AppError` for a stale or foreign cursor."""
        wanted = ReviewStatus(self.status) if self.status in STATUS_WORDS else None
        order: Any = self.sort if self.sort in SORTS else "std"
        items, next_cursor = service.list_items(
            session=self.session, status=wanted, sort=order, limit=self.size, cursor=self.cursor
        )
        return {
            "auth": self.auth,
            "cases": [case_view(item) for item in items],
            "status": wanted.value if wanted else "",
            "sort": order,
            "cursor": self.cursor or "",
            "next_cursor": next_cursor,
            "statuses": STATUS_WORDS,
            "sorts": SORTS,
        }


def _queue_request(
    auth: PageAuthDep,
    session: SessionDep,
    settings: SettingsDep,
    status: str = "",
    sort: str = "std",
    cursor: str | None = None,
) -> QueueRequest:
    return QueueRequest(auth, session, status, sort, cursor, settings.review_page_size)


QueueDep = Annotated[QueueRequest, Depends(_queue_request)]


@router.get("", response_class=HTMLResponse)
def queue_page(request: Request, queue: QueueDep) -> Response:
    """The queue: flagged cases with their uncertainty, clinical summary, status and holder."""
    auth = queue.auth
    if auth.clinician is None:
        return away_from_queue(auth)
    try:
        context = queue.context()
    except AppError as exc:  # a stale or foreign cursor
        return render(
            request,
            "error.html",
            {"auth": auth, "title": "Cannot show this page", "message": exc.message},
            exc.status_code,
        )
    return render(request, "queue.html", {**context, "title": "Review queue"})


@router.get("/list", response_class=HTMLResponse)
def queue_fragment(request: Request, queue: QueueDep) -> Response:
    """The list alone, for the page's script to refresh in place."""
    if queue.auth.clinician is None:
        return HTMLResponse("Signed out", status_code=401, headers={"Cache-Control": "no-store"})
    try:
        context = queue.context()
    except AppError as exc:
        return HTMLResponse(exc.message, status_code=exc.status_code)
    return render(request, "queue_list.html", context)


def _case_page(
    request: Request,
    auth: PageAuth,
    session: SessionDep,
    item_id: int,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
    draft: dict[str, str] | None = None,
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
        "draft": draft or {},
    }
    return render(request, "case.html", context, status_code)


@router.get("/cases/{item_id}", response_class=HTMLResponse)
def case_page(
    request: Request, item_id: ItemId, auth: PageAuthDep, session: SessionDep, done: str = ""
) -> Response:
    """One case: the encounter, its uncertainty, the audit trail, and claim or resolve."""
    if auth.clinician is None:
        return away_from_queue(auth)
    return _case_page(request, auth, session, item_id, notice=NOTICES.get(done))


def _case_action(
    request: Request,
    auth: PageAuth,
    session: SessionDep,
    item_id: int,
    csrf_token: str,
    act: Callable[[Principal], object],
    done: str,
    draft: dict[str, str] | None = None,
) -> Response:
    """Run one change to a case for the signed-in clinician; its error shows on the case page,
    with what the clinician had typed (`draft`) still in the form."""
    if auth.clinician is None:
        return away_from_queue(auth)
    refused = refused_post(request, auth, csrf_token)
    if refused is not None:
        return refused
    try:
        act(auth.clinician)
    except AppError as exc:
        return _case_page(
            request,
            auth,
            session,
            item_id,
            error=exc.message,
            status_code=exc.status_code,
            draft=draft,
        )
    return RedirectResponse(f"/review/cases/{item_id}?done={done}", status_code=303)


def _holder_change(name: str, change: Callable[..., object], done: str, doc: str) -> None:
    """Register `POST /cases/{id}/<name>`: `change` (claim or release) by the clinician."""

    def route(
        request: Request,
        item_id: ItemId,
        auth: PageAuthDep,
        session: SessionDep,
        csrf_token: Annotated[str, Form(max_length=200)] = "",
    ) -> Response:
        def act(actor: Principal) -> object:
            return change(session=session, item_id=item_id, actor=actor)

        return _case_action(request, auth, session, item_id, csrf_token, act, done)

    route.__name__ = route.__qualname__ = f"{name}_case"
    route.__doc__ = doc
    router.post(f"/cases/{{item_id}}/{name}", response_class=HTMLResponse)(route)


_holder_change(
    "claim",
    workflow.claim,
    "claimed",
    "Claim a pending case; another clinician's claim wins with a clear message (409).",
)
_holder_change(
    "release",
    workflow.release,
    "released",
    "Give back a case you hold, so another clinician can claim it.",
)


@router.post("/cases/{item_id}/resolve", response_class=HTMLResponse)
def resolve_case(
    request: Request,
    item_id: ItemId,
    auth: PageAuthDep,
    session: SessionDep,
    outcome: Annotated[str, Form(max_length=32)] = "",
    note: Annotated[str, Form()] = "",
    risk: Annotated[str, Form(max_length=32)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Record the outcome and note of a case you hold, and your own risk estimate if given."""

    def act(actor: Principal) -> object:
        if outcome not in OUTCOME_WORDS:
            raise BadRequestError("Choose an outcome: agree, override or needs follow-up.")
        if len(note) > MAX_NOTE:
            raise BadRequestError(f"The note is too long: at most {MAX_NOTE} characters.")
        return workflow.resolve(
            session=session,
            item_id=item_id,
            actor=actor,
            outcome=Outcome(outcome),
            note=note.strip() or None,
            clinician_risk=clinician_risk(risk),
        )

    draft = {"outcome": outcome, "note": note, "risk": risk}
    return _case_action(request, auth, session, item_id, csrf_token, act, "resolved", draft)
