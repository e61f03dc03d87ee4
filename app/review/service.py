"""The review queue: idempotent storing of flagged cases, reading and listing.

Claiming, releasing, reassigning and resolving a case live in `app.review.workflow`.
"""

import base64
import binascii
import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Final

from sqlalchemy import Connection, select, tuple_
from sqlalchemy.orm import Session

from app.core.errors import BadRequestError, NotFoundError, UnavailableError
from app.db.base import MAX_ID, utcnow
from app.db.session import Database
from app.outcomes.scored import upsert_scored
from app.review.cases import Case, FlaggedCase, UnflaggedCase, case_key
from app.review.models import ReviewEvent, ReviewItem, ReviewStatus
from app.review.schemas import SortKey
from app.review.storage import EVENTS, insert_items_and_events
from app.review.versions import supersede, superseded_events

__all__ = [
    "Case",
    "FlaggedCase",
    "UnflaggedCase",
    "get_item",
    "item_events",
    "list_items",
    "queue_flagged",
    "store_flagged",
    "store_requests",
]

# NOTE: only a rival committing another version of the same encounter between our supersede
# and our insert (PostgreSQL; SQLite has one writer) makes a round repeat.
_ATTEMPTS: Final = 4


def queue_flagged(connection: Connection, cases: Sequence[Case]) -> list[int | None]:
    """Store each flagged case, or find the item already holding its content; supersede the
    open items of older versions. Returns the item ids in order (None for an unflagged case);
    the caller commits (`Database.write`).

    Race-safe and safe to repeat: the open items of other contents of the same encounters are
    superseded first (one UPDATE), then `INSERT ... ON CONFLICT DO NOTHING RETURNING` (on the
    unique (encounter_id, model_version, content_hash) and the one-open-item index), then one
    read of the rows that already existed. A case that lost to a rival's other version of its
    encounter is tried again, superseding the rival. On PostgreSQL the items and their pending
    events are one statement (see `app.review.storage`). The answers the cases carry are kept
    in scored_encounters in the same transaction (`app.outcomes.scored`).
    """
    now = utcnow()
    unique = _one_case_per_content(cases)
    cases_of = {(c.encounter_id, c.model_version): c for c in unique.values()}
    found: dict[tuple[str, str, str], int] = {}
    superseded: list[tuple[int, str, str, str]] = []
    waiting: list[Case] = list(unique.values())
    for _ in range(_ATTEMPTS):
        superseded += supersede(connection, waiting, now)
        flagged = [c for c in waiting if isinstance(c, FlaggedCase)]
        inserted = insert_items_and_events(connection, flagged, now)
        found.update({tuple(row[1:]): row[0] for row in inserted})
        missing = [case_key(c) for c in flagged if case_key(c) not in found]
        if missing:
            columns = (ReviewItem.encounter_id, ReviewItem.model_version, ReviewItem.content_hash)
            rows = connection.execute(
                select(*columns, ReviewItem.id).where(tuple_(*columns).in_(sorted(missing)))
            )
            found.update({(e, v, h): item_id for e, v, h, item_id in rows})
        waiting = [c for c in flagged if case_key(c) not in found]
        if not waiting:
            break
    else:
        raise UnavailableError("another version of the encounter is being stored; retry shortly")
    newer = {
        key: (c.content_hash, found.get(case_key(c)), c.actor, c.actor_key_id)
        for key, c in cases_of.items()
    }
    if superseded:
        connection.execute(EVENTS.insert(), superseded_events(superseded, newer, now))
    upsert_scored(connection, [c.scored for c in cases if c.scored is not None], now)
    return [found[case_key(c)] if isinstance(c, FlaggedCase) else None for c in cases]


def _one_case_per_content(cases: Sequence[Case]) -> dict[tuple[str, str, str], Case]:
    """The cases by content (a flagged one first), refusing two contents of one encounter."""
    unique: dict[tuple[str, str, str], Case] = {}
    versions: dict[tuple[str, str], str] = {}
    for case in cases:  # NOTE: the same content twice is one item with one event
        key = case_key(case)
        if versions.setdefault(key[:2], key[2]) != key[2]:
            raise BadRequestError(
                f"encounter_id {case.encounter_id!r}: two different contents in one commit"
            )
        current = unique.get(key)
        if current is None or (
            isinstance(case, FlaggedCase) and not isinstance(current, FlaggedCase)
        ):
            unique[key] = case
    return unique


def store_flagged(database: Database, cases: Sequence[Case]) -> list[int | None]:
    """Commit `cases` through `database`'s kept write connections (`queue_flagged`)."""
    return database.write(partial(queue_flagged, cases=cases))


def store_requests(
    database: Database, requests: Sequence[Sequence[Case]]
) -> list[list[int | None] | Exception]:
    """Commit several requests' cases together (`store_flagged`); each request's item ids.

    A request with a value the database refuses gets its 400 and the others are still stored;
    requests sending different versions of one encounter are committed one after another; an
    error that fails the whole commit (503) is raised, as is the 400 of a lone request.
    """
    try:
        ids = store_flagged(database, [case for cases in requests for case in cases])
    except BadRequestError:
        if len(requests) == 1:
            raise
        # NOTE: commit each request alone, so the 400 reaches that request only.
        return [_store_or_error(database, cases) for cases in requests]
    out: list[list[int | None] | Exception] = []
    start = 0
    for cases in requests:
        out.append(ids[start : start + len(cases)])
        start += len(cases)
    return out


def _store_or_error(database: Database, cases: Sequence[Case]) -> list[int | None] | Exception:
    try:
        return store_flagged(database, cases)
    except (BadRequestError, UnavailableError) as exc:
        return exc


def get_item(*, session: Session, item_id: int) -> ReviewItem:
    """The item with `item_id`, or 404."""
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise NotFoundError(f"review item {item_id} does not exist")
    return item


def item_events(*, session: Session, item_id: int) -> list[ReviewEvent]:
    """The audit trail of one item, oldest first."""
    query = select(ReviewEvent).where(ReviewEvent.item_id == item_id).order_by(ReviewEvent.id)
    return list(session.scalars(query))


# Sort key -> (column, descending); the id breaks ties so keyset pages never skip or repeat.
_ORDERS: Final = {
    "std": (ReviewItem.std, True),
    "newest": (ReviewItem.created_at, True),
    "age": (ReviewItem.created_at, False),
}


def list_items(
    *,
    session: Session,
    status: ReviewStatus | None = None,
    min_std: float | None = None,
    since: datetime | None = None,
    model_version: str | None = None,
    sort: SortKey = "std",
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[ReviewItem], str | None]:
    """One page of items (keyset pagination): std descending, newest first, or oldest first."""
    query = select(ReviewItem)
    if status is not None:
        query = query.where(ReviewItem.status == status.value)
    else:  # NOTE: superseded items are history, listed only when asked for by status
        query = query.where(ReviewItem.status != ReviewStatus.SUPERSEDED.value)
    if min_std is not None:
        query = query.where(ReviewItem.std >= min_std)
    if since is not None:
        query = query.where(ReviewItem.created_at >= _aware(since))
    if model_version is not None:
        query = query.where(ReviewItem.model_version == model_version)
    column, descending = _ORDERS[sort]
    if descending:
        query = query.order_by(column.desc(), ReviewItem.id.desc())
    else:
        query = query.order_by(column, ReviewItem.id)
    if cursor is not None:
        value, last_id = _decode_cursor(cursor, sort)
        seek = tuple_(column, ReviewItem.id)
        start = tuple_(value, last_id)
        query = query.where(seek < start if descending else seek > start)
    rows = list(session.scalars(query.limit(limit + 1)))
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    next_key: float | str = last.std if sort == "std" else last.created_at.isoformat()
    return rows[:limit], _encode_cursor(sort, next_key, last.id)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _encode_cursor(sort: str, key: float | str, last_id: int) -> str:
    raw = json.dumps([sort, key, last_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: str) -> tuple[float | datetime, int]:
    """The sort key and id a cursor holds, each checked: a forged value never reaches the
    driver (which cannot bind an integer over 64 bits, nor compare a naive timestamp)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        cursor_sort, key, last_id = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise BadRequestError(_NOT_ISSUED) from exc
    if cursor_sort != sort:
        raise BadRequestError("cursor: issued for another sort order; start again without it")
    if type(last_id) is not int or not 1 <= last_id <= MAX_ID:
        raise BadRequestError(_NOT_ISSUED)
    if sort == "std":
        if type(key) is not float or not math.isfinite(key):  # as issued: a stored std
            raise BadRequestError(_NOT_ISSUED)
        return key, last_id
    try:
        moment = datetime.fromisoformat(key)
    except (TypeError, ValueError) as exc:
        raise BadRequestError(_NOT_ISSUED) from exc
    if moment.tzinfo is None:
        raise BadRequestError(_NOT_ISSUED)
    return moment, last_id


_NOT_ISSUED: Final = "cursor: not a cursor this API issued; start again without it"
