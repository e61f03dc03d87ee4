"""How the review writer inserts review items and their first events, per database backend.

SQLite gets driver-level multi-row INSERTs, PostgreSQL one statement for items and events;
both insert in the caller's transaction and return the rows they inserted.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any, Final, cast

from sqlalchemy import Connection, Dialect, Table, text

from app.review.cases import FlaggedCase, case_key
from app.review.models import ReviewEvent, ReviewItem, ReviewStatus

# NOTE: the writer inserts through the tables, not the ORM classes: the ORM's bulk path cost more
# than the SQL it sends.
ITEMS = cast(Table, ReviewItem.__table__)
EVENTS = cast(Table, ReviewEvent.__table__)


def insert_items_and_events(
    connection: Connection, cases: list[FlaggedCase], now: datetime
) -> list[tuple[Any, ...]]:
    """Insert the items of `cases` not stored yet and a pending event for each; returns
    (id, encounter_id, model_version, content_hash) of the items inserted."""
    if connection.dialect.name == "postgresql":
        return _insert_in_one_statement(connection, cases, now)
    return _insert_items_then_events(connection, cases, now)


# NOTE: SQLite allows 32,766 placeholders in one statement, so rows go in chunks.
_ROWS_PER_STATEMENT: Final = 1000


def _insert_items_then_events(
    connection: Connection, cases: list[FlaggedCase], now: datetime
) -> list[tuple[Any, ...]]:
    """SQLite: the items, then the events of those inserted (the caller's transaction).

    NOTE: plain multi-row INSERTs through the driver, each value encoded by its column's own
    type: SQLAlchemy's compiled insert sends the same SQL for more CPU, on the interpreter lock
    the event loop needs.
    """
    inserted = _insert(
        connection,
        ITEMS,
        [_item_row(case, now) for case in cases],
        tail=" ON CONFLICT DO NOTHING RETURNING id, encounter_id, model_version, content_hash",
    )
    actors = {case_key(case): (case.actor, case.actor_key_id) for case in cases}
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
    _insert(connection, EVENTS, events)
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
# less than quoting each encounter into an array literal. The JSON columns travel as strings
# inside it, so a `\u0000` escape stays text, as the column stores it; unpacked as a JSON
# value it would be refused. The events CTE sees only the rows
# this statement inserted, so a case already queued gets no second "pending" event.
_INSERT_ITEMS_AND_EVENTS: Final = text(
    """
    WITH incoming AS (
        SELECT * FROM json_to_recordset(CAST(:cases AS JSON)) AS incoming (
            encounter_id TEXT, model_version TEXT, content_hash TEXT, encounter TEXT,
            probability FLOAT8, std FLOAT8, band_low FLOAT8, band_high FLOAT8, reasons TEXT,
            threshold FLOAT8, n_samples INT, seed INT8, action_threshold FLOAT8,
            decision_flip_probability FLOAT8, actor TEXT, actor_key_id INT
        )
    ), inserted AS (
        INSERT INTO review_items (encounter_id, model_version, content_hash, encounter,
                                  probability, std, band_low, band_high, reasons, threshold,
                                  n_samples, seed, action_threshold, decision_flip_probability,
                                  status, created_at, updated_at)
        SELECT encounter_id, model_version, content_hash, CAST(encounter AS JSON), probability,
               std, band_low, band_high, CAST(reasons AS JSON), threshold, n_samples, seed,
               action_threshold, decision_flip_probability, :status, :now, :now
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
        "action_threshold": p.action_threshold,
        "decision_flip_probability": p.decision_flip_probability,
    }


def _item_row(case: FlaggedCase, now: datetime) -> dict[str, Any]:
    status = ReviewStatus.PENDING.value
    return _case_fields(case) | {"status": status, "created_at": now, "updated_at": now}
