"""Keeping emitted RiskAssessments (one per content and model), the EHR's card feedback, and
the JWT ids used."""

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, select

from app.auth.service import Principal
from app.cds.models import CardFeedback, RiskAssessmentRecord, TokenUse
from app.core.errors import BadRequestError, NotFoundError
from app.db.base import utcnow
from app.db.session import Database
from app.review.models import ReviewEvent, ReviewItem

Json = dict[str, Any]
_RA = RiskAssessmentRecord


class Feedback(NamedTuple):
    """One CDS Hooks feedback entry, validated."""

    card: str
    outcome: str
    override_reason: Json | None
    at: datetime


class Pending(NamedTuple):
    """An assessment to keep: its key (encounter, model version, content hash), the resource
    (its id derived from the key) and the review item of a flagged case."""

    key: tuple[str, str, str]
    resource: Json
    review_item_id: int | None


def keep_assessments(database: Database, pending: Sequence[Pending]) -> list[Json | Exception]:
    """Store each assessment unless one is stored under its key; the stored ones, in order, so a
    retry answers with the first assessment. One transaction for all; should the database
    refuse a value, each is stored alone, so only its own request gets the 400."""
    try:
        return list(database.write(partial(_keep, pending)))
    except BadRequestError:
        if len(pending) == 1:
            raise
    out: list[Json | Exception] = []
    for one in pending:
        try:
            out += database.write(partial(_keep, [one]))
        except BadRequestError as exc:
            out.append(exc)
    return out


def _keep(pending: Sequence[Pending], connection: Connection) -> list[Json]:
    # NOTE: a key twice in one batch is inserted once, its first resource; a row stored before
    # (a retry) stays as it is and is read back. The id is derived from the key, so each
    # request gets the first assessment of its key.
    first: dict[str, Pending] = {}
    for p in pending:
        first.setdefault(p.resource["id"], p)
    rows = [
        {
            "resource_id": resource_id,
            "encounter_id": p.key[0],
            "model_version": p.key[1],
            "content_hash": p.key[2],
            "review_item_id": p.review_item_id,
            "resource": p.resource,
            "created_at": utcnow(),
        }
        for resource_id, p in first.items()
    ]
    statement = _upsert(connection)(_RA).on_conflict_do_nothing().returning(_RA.resource_id)
    inserted = set(connection.execute(statement, rows).scalars())
    stored = {resource_id: first[resource_id].resource for resource_id in inserted}
    before = first.keys() - inserted
    if before:
        query = select(_RA.resource_id, _RA.resource).where(_RA.resource_id.in_(before))
        stored.update((row[0], row[1]) for row in connection.execute(query))
    return [stored[p.resource["id"]] for p in pending]


def _upsert(connection: Connection) -> Any:
    """The backend's `insert`, which has `on_conflict_do_nothing`."""
    if connection.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert


class TokenUseKey(NamedTuple):
    """One accepted EHR JWT: its issuer, `jti` and expiry."""

    issuer: str
    jti: str
    expires_at: datetime


def first_uses(
    database: Database, uses: Sequence[TokenUseKey], purge: bool = False
) -> list[bool | Exception]:
    """Record each JWT's `jti` in one transaction; for each, whether it was its first use (False:
    a replay, also for the second of two in `uses`). With `purge`, first delete the records of
    tokens expired by now (they are refused as expired anyway)."""
    return list(database.write(partial(_first_uses, uses, purge)))


def _first_uses(uses: Sequence[TokenUseKey], purge: bool, connection: Connection) -> list[bool]:
    if purge:
        connection.execute(delete(TokenUse).where(TokenUse.expires_at < utcnow()))
    rows = {(u.issuer, u.jti): u.expires_at for u in uses}
    # NOTE: ON CONFLICT DO NOTHING, not a plain INSERT caught as IntegrityError: on PostgreSQL
    # that error aborts the transaction, and with it the other tokens of the group.
    # RETURNING, not rowcount, which reads -1 for this insert on PostgreSQL (psycopg).
    insert = _upsert(connection)(TokenUse).values(
        [{"issuer": i, "jti": j, "expires_at": e} for (i, j), e in rows.items()]
    )
    returned = connection.execute(
        insert.on_conflict_do_nothing().returning(TokenUse.issuer, TokenUse.jti)
    )
    new = {(row[0], row[1]) for row in returned}
    out = []
    for use in uses:
        key = (use.issuer, use.jti)
        out.append(key in new)
        new.discard(key)  # NOTE: the same token twice in one group: only the first is new
    return out


def assessments_of(database: Database, encounter_id: str) -> list[Json]:
    """The RiskAssessments emitted for one encounter, oldest first."""
    t = _RA
    query = select(t.resource).where(t.encounter_id == encounter_id).order_by(t.id)
    with database.connect() as connection:
        return list(connection.execute(query).scalars())


def keep_feedback(database: Database, entries: Sequence[Feedback], actor: Principal) -> int:
    """Store every entry (404 naming a card this service did not issue, then nothing is stored)
    and add each to the audit trail of the card's review item; return how many."""
    with database.session() as session:
        items = _review_items(session, [e.card for e in entries])
        ids = {i for i in items.values() if i is not None}
        query = select(ReviewItem.id, ReviewItem.status).where(ReviewItem.id.in_(ids))
        statuses: dict[int, str] = {row[0]: row[1] for row in session.execute(query)}
        now = utcnow()
        for entry in entries:
            item_id = items[entry.card]
            session.add(
                CardFeedback(
                    card_uuid=entry.card,
                    outcome=entry.outcome,
                    override_reason=entry.override_reason,
                    outcome_at=entry.at,
                    review_item_id=item_id,
                    actor=actor.name,
                    actor_key_id=actor.key_id,
                    created_at=now,
                )
            )
            if item_id is not None:
                status = statuses[item_id]
                detail: Json = {"ehr_feedback": entry.outcome, "card": entry.card}
                if entry.override_reason is not None:
                    detail["override_reason"] = entry.override_reason
                session.add(
                    ReviewEvent(
                        item_id=item_id,
                        from_status=status,
                        to_status=status,
                        actor=actor.name,
                        actor_key_id=actor.key_id,
                        at=now,
                        detail=detail,
                    )
                )
        session.commit()
    return len(entries)


def _review_items(session: Any, cards: Sequence[str]) -> dict[str, int | None]:
    t = _RA
    query = select(t.resource_id, t.review_item_id).where(t.resource_id.in_(set(cards)))
    found: dict[str, int | None] = {row[0]: row[1] for row in session.execute(query)}
    unknown = [c for c in cards if c not in found]
    if unknown:
        raise NotFoundError(
            f"feedback[].card: {unknown[0]!r} is not a card this service issued (the card's"
            " uuid from a readmission-risk answer); nothing was stored"
        )
    return found
