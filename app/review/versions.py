"""Versions of one encounter: a content hash per item, and superseding an open stale item.

An encounter sent again with other content is a new version: the open (pending or in review)
item of an older version is marked `superseded`, in the same transaction that stores the new
one, so at most one item per (encounter_id, model_version) is ever open (a partial unique
index holds it). Content already stored for the encounter is a retry and changes nothing.
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Protocol

from sqlalchemy import Connection, bindparam, select, text
from sqlalchemy.orm import Session

from app.db.base import UTCDateTime
from app.review.models import ReviewEvent, ReviewStatus


class Version(Protocol):
    """What superseding needs of a case, flagged or not."""

    @property
    def encounter_id(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def model_version(self) -> str: ...


# Fields that are about the encounter, not what the model scores: a discharge date sent later
# is the same version of the encounter.
NOT_CONTENT: Final = frozenset({"discharge_date"})


def content_hash(encounter: Mapping[str, Any]) -> str:
    """The sha256 of the encounter as sent, as canonical JSON (sorted keys, no spaces), without
    the fields in `NOT_CONTENT`."""
    if not NOT_CONTENT.isdisjoint(encounter):
        encounter = {k: v for k, v in encounter.items() if k not in NOT_CONTENT}
    canonical = json.dumps(encounter, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


_INCOMING: Final = {
    "postgresql": """
        SELECT * FROM json_to_recordset(CAST(:cases AS JSON))
            AS incoming (encounter_id TEXT, model_version TEXT, content_hash TEXT)
    """,
    "sqlite": """
        SELECT json_extract(value, '$.encounter_id') AS encounter_id,
               json_extract(value, '$.model_version') AS model_version,
               json_extract(value, '$.content_hash') AS content_hash
        FROM json_each(:cases)
    """,
}
# NOTE: the incoming cases are the outer loop (SQLite takes CROSS JOIN as a join order) and
# SQLite's outer `+status` is no index term, so each case is one lookup in the open-item index:
# planned the other way, a commit read every open item once per incoming case, and grew slower
# as the queue grew.
# RETURNING gives the new row, so the old status is read from the assignee: a pending item has
# none, an item in review has its clinician. The outer status check is repeated on PostgreSQL
# after waiting for a rival's lock, so a claim and a supersede never both win.
_SUPERSEDE: Final = """
    WITH incoming AS ({incoming})
    UPDATE review_items SET status = 'superseded', updated_at = :now
    WHERE {status} IN ('pending', 'in_review') AND id IN (
        SELECT item.id FROM incoming {join} review_items AS item
            ON item.encounter_id = incoming.encounter_id
            AND item.model_version = incoming.model_version
        WHERE item.status IN ('pending', 'in_review')
            AND item.content_hash <> incoming.content_hash
            AND NOT EXISTS (
                SELECT 1 FROM review_items AS known
                WHERE known.encounter_id = incoming.encounter_id
                    AND known.model_version = incoming.model_version
                    AND known.content_hash = incoming.content_hash
            )
    )
    RETURNING id, encounter_id, model_version, assignee
"""
# Per dialect: the join that keeps the incoming cases outside, and the outer status term.
_PLANNING: Final = {
    "postgresql": {"join": "JOIN", "status": "status"},
    "sqlite": {"join": "CROSS JOIN", "status": "+status"},
}
_STATEMENTS: Final = {
    dialect: text(_SUPERSEDE.format(incoming=incoming, **_PLANNING[dialect])).bindparams(
        bindparam("now", type_=UTCDateTime())
    )
    for dialect, incoming in _INCOMING.items()
}


def supersede(
    connection: Connection, cases: Sequence[Version], now: datetime
) -> list[tuple[int, str, str, str]]:
    """Mark the open items of older versions of `cases` superseded (one statement).

    Returns (item id, encounter_id, model_version, the status it had) of each; the caller
    writes their events (`superseded_events`) once the new items' ids are known.
    """
    if not cases:
        return []
    incoming = [
        {"encounter_id": c.encounter_id, "model_version": c.model_version, "content_hash": h}
        for c in cases
        for h in [c.content_hash]
    ]
    statement = _STATEMENTS[connection.dialect.name]
    rows = connection.execute(statement, {"cases": json.dumps(incoming), "now": now})
    return [
        (
            item_id,
            encounter_id,
            version,
            ReviewStatus.PENDING.value if assignee is None else ReviewStatus.IN_REVIEW.value,
        )
        for item_id, encounter_id, version, assignee in rows
    ]


def superseded_events(
    superseded: Sequence[tuple[int, str, str, str]],
    newer: Mapping[tuple[str, str], tuple[str, int | None, str, int | None]],
    now: datetime,
) -> list[dict[str, Any]]:
    """The audit events of `superseded` items; `newer` maps (encounter_id, model_version) to
    the new version's (content hash, item id or None when unflagged, submitting key's name
    and id)."""
    events = []
    for item_id, encounter_id, version, from_status in superseded:
        new_hash, new_item_id, actor, actor_key_id = newer[(encounter_id, version)]
        events.append(
            {
                "item_id": item_id,
                "from_status": from_status,
                "to_status": ReviewStatus.SUPERSEDED.value,
                "actor": actor,
                "actor_key_id": actor_key_id,
                "at": now,
                "detail": {"content_hash": new_hash, "item_id": new_item_id},
            }
        )
    return events


def superseded_message(session: Session, item_id: int) -> str:
    """Why a superseded item cannot be claimed or resolved, naming what replaced it."""
    detail = session.scalar(
        select(ReviewEvent.detail)
        .where(
            ReviewEvent.item_id == item_id,
            ReviewEvent.to_status == ReviewStatus.SUPERSEDED.value,
        )
        .order_by(ReviewEvent.id.desc())
        .limit(1)
    )
    newer = (detail or {}).get("item_id")
    if newer is None:
        return f"review item {item_id} is superseded by a later unflagged version"
    return f"review item {item_id} is superseded by item {newer}"
