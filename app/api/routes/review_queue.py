"""The review queue: list and read (clinician or admin), claim, release and resolve
(clinician), reassign (admin)."""

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.orm import Session

from app.api.deps import AdminDep, ClinicianDep, ItemId, QueueReaderDep, SessionDep, SettingsDep
from app.api.responses import error_responses
from app.review import service, workflow
from app.review.models import ReviewItem, ReviewStatus
from app.review.schemas import (
    ReassignIn,
    ResolveIn,
    ReviewItemDetail,
    ReviewItemOut,
    ReviewPage,
    SortKey,
)

router = APIRouter(
    prefix="/review-queue",
    tags=["review queue"],
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)


@router.get("", response_model=ReviewPage)
def list_queue(
    _principal: QueueReaderDep,
    session: SessionDep,
    settings: SettingsDep,
    status: ReviewStatus | None = None,
    min_std: Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False)] = None,
    since: datetime | None = None,
    model_version: Annotated[str | None, Query(max_length=64)] = None,
    sort: SortKey = "std",
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> ReviewPage:
    """Queue items: most uncertain (`sort=std`), newest (`sort=newest`) or oldest first (`age`)."""
    page = min(limit or settings.review_page_size, settings.review_max_page_size)
    items, next_cursor = service.list_items(
        session=session,
        status=status,
        min_std=min_std,
        since=since,
        model_version=model_version,
        sort=sort,
        limit=page,
        cursor=cursor,
    )
    return ReviewPage(
        items=[ReviewItemOut.model_validate(i) for i in items], next_cursor=next_cursor
    )


@router.get("/{item_id}", response_model=ReviewItemDetail)
def read_item(item_id: ItemId, _principal: QueueReaderDep, session: SessionDep) -> ReviewItemDetail:
    """One item with its audit trail."""
    return _detail(session, item_id)


@router.post("/{item_id}/claim", response_model=ReviewItemDetail)
def claim_item(item_id: ItemId, principal: ClinicianDep, session: SessionDep) -> ReviewItemDetail:
    """Take a pending item for review; 409 if another clinician key has it."""
    return _moved(session, item_id, workflow.claim, actor=principal)


@router.post("/{item_id}/release", response_model=ReviewItemDetail)
def release_item(item_id: ItemId, principal: ClinicianDep, session: SessionDep) -> ReviewItemDetail:
    """Give back an item your key holds (it returns to pending); 409 if you do not hold it."""
    return _moved(session, item_id, workflow.release, actor=principal)


@router.post("/{item_id}/reassign", response_model=ReviewItemDetail)
def reassign_item(
    item_id: ItemId, body: ReassignIn, principal: AdminDep, session: SessionDep
) -> ReviewItemDetail:
    """Hand an item in review to another live clinician key (admin); 409 if not in review."""
    return _moved(
        session, item_id, workflow.reassign, actor=principal, to_key_id=body.assignee_key_id
    )


@router.post("/{item_id}/resolve", response_model=ReviewItemDetail)
def resolve_item(
    item_id: ItemId, body: ResolveIn, principal: ClinicianDep, session: SessionDep
) -> ReviewItemDetail:
    """Record the outcome of an item your key holds, and optionally your own risk estimate."""
    return _moved(
        session,
        item_id,
        workflow.resolve,
        actor=principal,
        outcome=body.outcome,
        note=body.note,
        clinician_risk=body.clinician_risk,
    )


def _moved(
    session: Session, item_id: int, move: Callable[..., ReviewItem], **details: Any
) -> ReviewItemDetail:
    """The item after `move` (a `workflow` step) with `details`, as the routes answer it."""
    move(session=session, item_id=item_id, **details)
    return _detail(session, item_id)


def _detail(session: Session, item_id: int) -> ReviewItemDetail:
    item = service.get_item(session=session, item_id=item_id)
    events = service.item_events(session=session, item_id=item_id)
    out = ReviewItemOut.model_validate(item).model_dump()
    return ReviewItemDetail.model_validate({**out, "events": events})
