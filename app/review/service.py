"""The review queue: idempotent intake of flagged cases, reading and listing.

Claiming, releasing, reassigning and resolving a case live in `app.review.workflow`.
"""

import base64
import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache, partial
from typing import Any, Final, cast

from sqlalchemy import Connection, Dialect, Table, select, text, tuple_
from sqlalchemy.orm import Session

from app.core.errors import BadRequestError, NotFoundError, UnavailableError
from app.db.base import MAX_ID, utcnow
from app.db.session import Database
from app.inference.prediction import Prediction
from app.review.models import ReviewEvent, ReviewItem, ReviewStatus
from app.review.schemas import SortKey
from app.review.versions import content_hash, supersede, superseded_events


@dataclass(frozen=True)
class FlaggedCase:
    """A flagged prediction to queue, with the encounter exactly as the EHR sent it."""

    encounter_id: str
    encounter: Mapping[str, Any]
    prediction: Prediction
    actor: str  # the name of the API key that submitted it, for the audit trail
    actor_key_id: int | None = None  # that key's id
    content_hash: str = ""  # NOTE: `content_hash(encounter)` when not given

    def __post_init__(self) -> None:
        if not self.content_hash:
            object.__setattr__(self, "content_hash", content_hash(self.encounter))

    @property
    def model_version(self) -> str:
        """The version of the model that scored it."""
        return self.prediction.model_version


@dataclass(frozen=True)
class UnflaggedCase:
    """A version of an encounter that was not flagged: it only supersedes an open stale item."""

    encounter_id: str
    model_version: str
    content_hash: str
    actor: str
    actor_key_id: int | None = None


Case = FlaggedCase | UnflaggedCase

# NOTE: intake writes through the tables, not the ORM classes: the ORM's bulk path cost more
# than the SQL it sends.
_ITEMS = cast(Table, ReviewItem.__table__)
_EVENTS = cast(Table, ReviewEvent.__table__)
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
    events are one statement (see `_insert_in_one_statement`).
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
        if connection.dialect.name == "postgresql":
            inserted = _insert_in_one_statement(connection, flagged, now)
        else:
            inserted = _insert_items_then_events(connection, flagged, now)
        found.update({tuple(row[1:]): row[0] for row in inserted})
        missing = [_key(c) for c in flagged if _key(c) not in found]
        if missing:
            columns = (ReviewItem.encounter_id, ReviewItem.model_version, ReviewItem.content_hash)
            rows = connection.execute(
                select(*columns, ReviewItem.id).where(tuple_(*columns).in_(sorted(missing)))
            )
            found.update({(e, v, h): item_id for e, v, h, item_id in rows})
        waiting = [c for c in flagged if _key(c) not in found]
        if not waiting:
            break
    else:
        raise UnavailableError("another version of the encounter is being stored; retry shortly")
    newer = {
        key: (c.content_hash, found.get(_key(c)), c.actor, c.actor_key_id)
        for key, c in cases_of.items()
    }
    if superseded:
        connection.execute(_EVENTS.insert(), superseded_events(superseded, newer, now))
    return [found[_key(c)] if isinstance(c, FlaggedCase) else None for c in cases]


def _one_case_per_content(cases: Sequence[Case]) -> dict[tuple[str, str, str], Case]:
    """The cases by content (a flagged one first), refusing two contents of one encounter."""
    unique: dict[tuple[str, str, str], Case] = {}
    versions: dict[tuple[str, str], str] = {}
    for case in cases:  # NOTE: the same content twice is one item with one event
        key = _key(case)
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


def _key(case: Case) -> tuple[str, str, str]:
    return case.encounter_id, case.model_version, case.content_hash


# NOTE: SQLite allows 32,766 placeholders in one statement, so rows go in chunks.
_ROWS_PER_STATEMENT: Final = 1000


def _insert_items_then_events(
    connection: Connection, cases: list[FlaggedCase], now: datetime
) -> list[tuple[Any, ...]]:
    """SQLite: the items, then the events of those inserted (the caller's transaction).

    NOTE: plain multi-row INSERTs through the driver, each value encoded by its column's own
    type: SQLAlchemy's compiled insert sent the same SQL but cost 618 against 385 us of CPU for
    a commit of four cases, on the interpreter lock the event loop needs (two workers served
    6-8% more requests a second without it).
    """
    inserted = _insert(
        connection,
        _ITEMS,
        [_item_row(case, now) for case in cases],
        tail=" ON CONFLICT DO NOTHING RETURNING id, encounter_id, model_version, content_hash",
    )
    actors = {_key(case): (case.actor, case.actor_key_id) for case in cases}
    events = [
        {
            "item_id": item_id,
            "from_status": None,
            "to_status": ReviewStatus.PENDING.value,
            "actor": actors[(encounter_id, version, digest)][0],
            "actor_key_id": actors[(encounter_id, version, digest)][1],
            "at": now,
        }
        for item_id, encounter_id, version, digest in inserted
    ]
    _insert(connection, _EVENTS, events)
    return [tuple(row) for row in inserted]


def _insert(
    connection: Connection,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    tail: str = "",
) -> list[Any]:
    """INSERT `rows` (each with the same keys, the columns) into `table` in multi-row
    statements with SQLite's `?` placeholders, `tail` after their VALUES; returns the rows a
    RETURNING in `tail` gives."""
    if not rows:
        return []
    columns = tuple(rows[0])
    plan = list(zip(columns, _encoders(connection.dialect, table, columns), strict=True))
    placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    returned: list[Any] = []
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start : start + _ROWS_PER_STATEMENT]
        statement = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES "
            + ", ".join([placeholders] * len(chunk))
            + tail
        )
        values: list[Any] = []
        for row in chunk:
            values += [row[name] if encode is None else encode(row[name]) for name, encode in plan]
        result = connection.exec_driver_sql(statement, tuple(values))
        if result.returns_rows:
            returned.extend(result)
    return returned


@lru_cache(maxsize=16)
def _encoders(dialect: Dialect, table: Table, columns: tuple[str, ...]) -> tuple[Any, ...]:
    """Each column's bind processor on `dialect`, as SQLAlchemy applies it (None: as is)."""
    return tuple(
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    )


# NOTE: the cases travel as one JSON document: the statement's text never changes, so the
# server prepares it once per connection, and one `json.dumps` costs the serving process far
# less than quoting each encounter into an array literal (2.4 against 17 ms of CPU for 80). The
# JSON columns travel as strings inside it, so a `\u0000` escape stays text, as the column
# stores it; unpacked as a JSON value it would be refused. The events CTE sees only the rows
# this statement inserted, so a case already queued gets no second "pending" event.
_INSERT_ITEMS_AND_EVENTS: Final = text(
    """
    WITH incoming AS (
        SELECT * FROM json_to_recordset(CAST(:cases AS JSON)) AS incoming (
            encounter_id TEXT, model_version TEXT, content_hash TEXT, encounter TEXT,
            probability FLOAT8, std FLOAT8, band_low FLOAT8, band_high FLOAT8, reasons TEXT, threshold FLOAT8, n_samples INT,
            seed INT8, actor TEXT, actor_key_id INT
        )
    ), inserted AS (
        INSERT INTO review_items (encounter_id, model_version, content_hash, encounter,
                                  probability, std, band_low, band_high, reasons, threshold,
                                  n_samples, seed, status, created_at, updated_at)
        SELECT encounter_id, model_version, content_hash, CAST(encounter AS JSON), probability,
               std, band_low, band_high, CAST(reasons AS JSON), threshold, n_samples, seed,
               :status, :now, :now
        FROM incoming
        ON CONFLICT DO NOTHING
        RETURNING id, encounter_id, model_version, content_hash
    ), events AS (
        INSERT INTO review_events (item_id, from_status, to_status, actor, actor_key_id, at)
        SELECT inserted.id, NULL, :status, incoming.actor, incoming.actor_key_id, :now
        FROM inserted JOIN incoming USING (encounter_id, model_version, content_hash)
    )
    SELECT id, encounter_id, model_version, content_hash FROM inserted
    """
)


def _insert_in_one_statement(
    connection: Connection, cases: list[FlaggedCase], now: datetime
) -> list[tuple[Any, ...]]:
    if not cases:
        return []
    incoming = []
    for case in cases:
        fields = _case_fields(case) | {"actor": case.actor, "actor_key_id": case.actor_key_id}
        for name in ("encounter", "reasons"):
            fields[name] = json.dumps(fields[name])
        incoming.append(fields)
    parameters = {"cases": json.dumps(incoming), "status": ReviewStatus.PENDING.value, "now": now}
    return [tuple(row) for row in connection.execute(_INSERT_ITEMS_AND_EVENTS, parameters)]


def _case_fields(case: FlaggedCase) -> dict[str, Any]:
    """The review item's columns that come from the case itself."""
    p = case.prediction
    return {
        "encounter_id": case.encounter_id,
        "model_version": p.model_version,
        "content_hash": case.content_hash,
        "encounter": dict(case.encounter),
        "probability": p.probability,
        "std": p.std,
        "band_low": p.band_low,
        "band_high": p.band_high,
        "reasons": list(p.reasons),
        "threshold": p.threshold,
        "n_samples": p.n_samples,
        "seed": p.seed,
    }


def _item_row(case: FlaggedCase, now: datetime) -> dict[str, Any]:
    status = ReviewStatus.PENDING.value
    return _case_fields(case) | {"status": status, "created_at": now, "updated_at": now}


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
