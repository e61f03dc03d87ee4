"""Every answered score kept: one row per (encounter, model version), upserted per answer.

The review writer runs `upsert_scored` inside the transaction it commits anyway (a flagged
case's insert, an unflagged one's supersede check), so keeping a score costs one statement
per commit, not a commit per request.
"""

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, Final, NamedTuple, cast

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite

from app.inference.prediction import Prediction
from app.outcomes.models import ScoredEncounter

SCORED: Final = cast(Table, ScoredEncounter.__table__)
_UPDATED: Final = tuple(c.name for c in SCORED.columns if c.name not in ("id", "encounter_id"))


def _upsert(dialect: Any) -> Any:
    statement = dialect.insert(SCORED)
    return statement.on_conflict_do_update(
        index_elements=["encounter_id", "model_version"],
        set_={name: statement.excluded[name] for name in _UPDATED},
    )


# NOTE: built once and sent with every row's parameters (the driver's executemany): no SQL is
# compiled per commit.
_UPSERTS: Final = {"postgresql": _upsert(postgresql), "sqlite": _upsert(sqlite)}


class ScoredRow(NamedTuple):
    """One answered score as stored (`scored_at` is the commit's time)."""

    encounter_id: str
    model_version: str
    probability: float
    raw_probability: float
    std: float
    flagged: bool
    reasons: str
    age: str | None
    gender: str | None
    race: str | None
    admission_type_id: str | None
    discharged_on: date


def scored_row(encounter_id: str, record: Mapping[str, Any], prediction: Prediction) -> ScoredRow:
    """The row of one answer; the discharge date is the record's, else today (UTC)."""
    discharge = record.get("discharge_date")
    admission = record.get("admission_type_id")
    raw = prediction.raw_probability
    return ScoredRow(
        encounter_id=encounter_id,
        model_version=prediction.model_version,
        probability=prediction.probability,
        raw_probability=prediction.probability if raw is None else raw,
        std=prediction.std,
        flagged=prediction.flagged,
        reasons=json.dumps(list(prediction.reasons)),
        age=record.get("age"),
        gender=record.get("gender"),
        race=record.get("race"),
        admission_type_id=None if admission is None else str(admission),
        discharged_on=(
            datetime.now(UTC).date() if discharge is None else date.fromisoformat(str(discharge))
        ),
    )


def upsert_scored(connection: Connection, rows: Sequence[ScoredRow], now: datetime) -> None:
    """Insert or overwrite the rows (latest answer wins) in the caller's transaction."""
    latest = {(r.encounter_id, r.model_version): r for r in rows}  # NOTE: one row per key
    if not latest:
        return
    values = [{**r._asdict(), "scored_at": now} for r in latest.values()]
    connection.execute(_UPSERTS[connection.dialect.name], values)
