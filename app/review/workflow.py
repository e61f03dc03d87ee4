"""Working a case: claim, release, reassign and resolve, each owned by a key id.

Every status change is a conditional UPDATE (`... WHERE status = <expected>` and, where it
matters, the holder's key id), so two people racing for a case cannot both win, on SQLite or
PostgreSQL; each change appends an audit event, with the acting key's id, in the same
transaction. Names ride along for display only: two keys called alike are different holders.
"""

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, update
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Role
from app.auth.service import Principal, key_label
from app.core.errors import BadRequestError, ConflictError, NotFoundError
from app.db.base import utcnow
from app.review.models import Outcome, ReviewEvent, ReviewItem, ReviewStatus
from app.review.service import get_item
from app.review.versions import superseded_message


def claim(*, session: Session, item_id: int, actor: Principal) -> ReviewItem:
    """Move a pending item to in_review for `actor`; 409 if someone got there first."""
    now = utcnow()
    changed = _move(
        session,
        item_id,
        ReviewItem.status == ReviewStatus.PENDING.value,
        status=ReviewStatus.IN_REVIEW.value,
        assignee=actor.name,
        assignee_key_id=actor.key_id,
        claimed_at=now,
        updated_at=now,
    )
    if not changed:
        item = get_item(session=session, item_id=item_id)
        if item.status == ReviewStatus.IN_REVIEW.value and item.assignee_key_id == actor.key_id:
            return item  # a retried claim by the same clinician
        raise ConflictError(_conflict_message(session, item, "claim"))
    _event(session, item_id, ReviewStatus.PENDING, ReviewStatus.IN_REVIEW, actor, now)
    session.commit()
    return get_item(session=session, item_id=item_id)


def release(*, session: Session, item_id: int, actor: Principal) -> ReviewItem:
    """Give back a case `actor` holds: in_review -> pending, for anyone to claim; else 409."""
    now = utcnow()
    changed = _move(
        session,
        item_id,
        ReviewItem.status == ReviewStatus.IN_REVIEW.value,
        ReviewItem.assignee_key_id == actor.key_id,
        status=ReviewStatus.PENDING.value,
        assignee=None,
        assignee_key_id=None,
        claimed_at=None,
        updated_at=now,
    )
    if not changed:
        raise ConflictError(
            _conflict_message(session, get_item(session=session, item_id=item_id), "release")
        )
    _event(session, item_id, ReviewStatus.IN_REVIEW, ReviewStatus.PENDING, actor, now)
    session.commit()
    return _fresh(session, item_id)


def reassign(*, session: Session, item_id: int, actor: Principal, to_key_id: int) -> ReviewItem:
    """Hand a case in review to another live clinician key (an admin's move); 409 if not in
    review, 404 for an unknown key, 422 for a revoked or non-clinician one."""
    target = session.get(ApiKey, to_key_id)
    if target is None:
        raise NotFoundError(f"API key #{to_key_id} does not exist")
    if target.revoked_at is not None:
        raise BadRequestError(f"assignee_key_id: key #{to_key_id} is revoked")
    if target.role != Role.CLINICIAN.value:
        raise BadRequestError(
            f"assignee_key_id: key #{to_key_id} has the role {target.role}; "
            "cases go to clinician keys"
        )
    item = get_item(session=session, item_id=item_id)
    if item.status != ReviewStatus.IN_REVIEW.value:
        raise ConflictError(_conflict_message(session, item, "reassign"))
    if item.assignee_key_id == to_key_id:
        return item  # a retried reassignment
    holder, holder_name = item.assignee_key_id, item.assignee
    now = utcnow()
    # NOTE: conditional on the holder read above, so a release or another reassignment in
    # between makes this one fail instead of overwriting it.
    same_holder = (
        ReviewItem.assignee_key_id.is_(None)
        if holder is None
        else ReviewItem.assignee_key_id == holder
    )
    changed = _move(
        session,
        item_id,
        ReviewItem.status == ReviewStatus.IN_REVIEW.value,
        same_holder,
        assignee=target.name,
        assignee_key_id=target.id,
        claimed_at=now,
        updated_at=now,
    )
    if not changed:
        raise ConflictError(
            f"review item {item_id} changed while it was being reassigned; read it again and retry"
        )
    detail = {
        "from_key_id": holder,
        "from": key_label(holder_name or "nobody", holder),
        "to_key_id": target.id,
        "to": key_label(target.name, target.id),
    }
    _event(session, item_id, ReviewStatus.IN_REVIEW, ReviewStatus.IN_REVIEW, actor, now, detail)
    session.commit()
    return _fresh(session, item_id)


def resolve(
    *,
    session: Session,
    item_id: int,
    actor: Principal,
    outcome: Outcome,
    note: str | None,
    clinician_risk: float | None = None,
) -> ReviewItem:
    """Resolve an item the actor's key holds, with the clinician's own risk estimate if given;
    409 when it is not theirs or not in review."""
    now = utcnow()
    changed = _move(
        session,
        item_id,
        ReviewItem.status == ReviewStatus.IN_REVIEW.value,
        ReviewItem.assignee_key_id == actor.key_id,
        status=ReviewStatus.RESOLVED.value,
        outcome=outcome.value,
        note=note,
        clinician_risk=clinician_risk,
        resolved_at=now,
        updated_at=now,
    )
    if not changed:
        raise ConflictError(
            _conflict_message(session, get_item(session=session, item_id=item_id), "resolve")
        )
    detail: dict[str, Any] = {"outcome": outcome.value}
    if clinician_risk is not None:
        detail["clinician_risk"] = clinician_risk
    _event(session, item_id, ReviewStatus.IN_REVIEW, ReviewStatus.RESOLVED, actor, now, detail)
    session.commit()
    return _fresh(session, item_id)


def _move(session: Session, item_id: int, *where: ColumnElement[bool], **values: Any) -> bool:
    """Update the item if it still matches `where`; False (rolled back) when it did not."""
    result = session.execute(
        update(ReviewItem)
        .where(ReviewItem.id == item_id, *where)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    return True


def _event(
    session: Session,
    item_id: int,
    from_status: ReviewStatus,
    to_status: ReviewStatus,
    actor: Principal,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    session.add(
        ReviewEvent(
            item_id=item_id,
            from_status=from_status.value,
            to_status=to_status.value,
            actor=actor.name,
            actor_key_id=actor.key_id,
            at=at,
            detail=detail,
        )
    )


def _fresh(session: Session, item_id: int) -> ReviewItem:
    item = get_item(session=session, item_id=item_id)
    session.refresh(item)
    return item


def _conflict_message(session: Session, item: ReviewItem, action: str) -> str:
    if item.status == ReviewStatus.SUPERSEDED.value:
        return superseded_message(session, item.id)
    if item.status == ReviewStatus.RESOLVED.value:
        return f"review item {item.id} is already resolved"
    if item.status == ReviewStatus.IN_REVIEW.value:
        holder = key_label(item.assignee or "another key", item.assignee_key_id)
        return f"review item {item.id} is already claimed by {holder}"
    if item.status != ReviewStatus.PENDING.value:
        return f"review item {item.id} is {item.status}"
    if action == "release":
        return f"review item {item.id} is pending: nobody holds it, so there is nothing to release"
    return f"review item {item.id} is pending: claim it before you {action} it"
