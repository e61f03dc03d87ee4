"""Keeping emitted RiskAssessments (one per content and model) and the EHR's card feedback."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, select

from app.auth.service import Principal
from app.cds.models import CardFeedback, RiskAssessmentRecord
from app.core.errors import NotFoundError
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


def keep_assessment(
    database: Database,
    *,
    key: tuple[str, str, str],
    resource: Json,
    review_item_id: int | None,
) -> Json:
    """Store `resource` under `key` (encounter, model version, content hash) unless one is
    stored already; return the stored one, so a retry answers with the first assessment."""

    def work(connection: Connection) -> Json:
        found = _stored(connection, key)
        if found is not None:
            return found
        row = {
            "resource_id": resource["id"],
            "encounter_id": key[0],
            "model_version": key[1],
            "content_hash": key[2],
            "review_item_id": review_item_id,
            "resource": resource,
            "created_at": utcnow(),
        }
        # NOTE: a concurrent retry may store it first; then its row is the answer.
        dialect = connection.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as upsert
        else:
            from sqlalchemy.dialects.sqlite import insert as upsert  # type: ignore[assignment]
        connection.execute(upsert(_RA).values(row).on_conflict_do_nothing())
        stored = _stored(connection, key)
        assert stored is not None
        return stored

    return database.write(work)


def _stored(connection: Connection, key: tuple[str, str, str]) -> Json | None:
    t = _RA
    query = select(t.resource).where(
        t.encounter_id == key[0], t.model_version == key[1], t.content_hash == key[2]
    )
    resource: Json | None = connection.execute(query).scalar_one_or_none()
    return resource


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
                status = session.get_one(ReviewItem, item_id).status
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
