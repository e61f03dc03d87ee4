"""Recording outcomes: all rows checked first, then stored in one transaction, or none is."""

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.errors import BadRequestError, ConflictError, NotFoundError
from app.db.base import utcnow
from app.outcomes.models import OutcomeEvent, OutcomeRecord, ScoredEncounter
from app.outcomes.schemas import OutcomeIn

# The outcome the model predicts: a readmission within this many days of discharge.
WINDOW_DAYS: Final = 30


def window_closes(discharged_on: date) -> date:
    """The first day a "not readmitted" is known: the 30-day window after discharge is over."""
    return discharged_on + timedelta(days=WINDOW_DAYS)


def record_outcomes(
    *,
    session: Session,
    outcomes: Sequence[OutcomeIn],
    actor: str,
    today: date,
    batch: bool,
) -> list[dict[str, str]]:
    """Record `outcomes` (each for one or every model version that scored it) and commit;
    one answer per (outcome, version). Any bad row raises (404, 409, 422) and stores nothing."""
    names = [f"outcomes[{i}]: " if batch else "" for i in range(len(outcomes))]
    _refuse_repeats(outcomes, names)
    ids = sorted({o.encounter_id for o in outcomes})
    discharged: dict[str, dict[str, date]] = {}
    query = select(
        ScoredEncounter.encounter_id, ScoredEncounter.model_version, ScoredEncounter.discharged_on
    ).where(ScoredEncounter.encounter_id.in_(ids))
    for encounter_id, version, day in session.execute(query):
        discharged.setdefault(encounter_id, {})[version] = day
    known = {
        (r.encounter_id, r.model_version): r
        for r in session.scalars(select(OutcomeRecord).where(OutcomeRecord.encounter_id.in_(ids)))
    }
    now = utcnow()
    answers: list[dict[str, str]] = []
    for outcome, name in zip(outcomes, names, strict=True):
        for version in _versions(outcome, discharged, name):
            closes = window_closes(discharged[outcome.encounter_id][version])
            _check_dates(outcome, closes, today, name)
            current = known.get((outcome.encounter_id, version))
            status = _store(session, outcome, version, current, actor, now, name)
            answers.append(
                {"encounter_id": outcome.encounter_id, "model_version": version, "status": status}
            )
    try:
        session.commit()
    except IntegrityError as exc:
        raise ConflictError(
            "an outcome of these encounters was recorded at the same time; send them again"
        ) from exc
    return answers


def _refuse_repeats(outcomes: Sequence[OutcomeIn], names: Sequence[str]) -> None:
    first: dict[tuple[str, str | None], int] = {}
    for index, outcome in enumerate(outcomes):
        seen = first.setdefault((outcome.encounter_id, outcome.model_version), index)
        if seen != index:
            raise BadRequestError(
                f"{names[index]}encounter {outcome.encounter_id!r} is also outcomes[{seen}];"
                " send each encounter once per request"
            )


def _versions(outcome: OutcomeIn, discharged: dict[str, dict[str, date]], name: str) -> list[str]:
    """The model versions the outcome answers: the one asked for, or every one that scored it."""
    scored = discharged.get(outcome.encounter_id)
    if not scored:
        raise NotFoundError(
            f"{name}encounter {outcome.encounter_id!r} was never scored here; outcomes are"
            " recorded for encounters this service scored"
        )
    if outcome.model_version is None:
        return sorted(scored)
    if outcome.model_version not in scored:
        raise NotFoundError(
            f"{name}encounter {outcome.encounter_id!r} was not scored by model version"
            f" {outcome.model_version!r} (scored by {', '.join(sorted(scored))})"
        )
    return [outcome.model_version]


def _check_dates(outcome: OutcomeIn, closes: date, today: date, name: str) -> None:
    """422 for a "not readmitted" before the window closed, and a readmission date outside it."""
    eid = outcome.encounter_id
    discharged = closes - timedelta(days=WINDOW_DAYS)
    if not outcome.readmitted:
        if outcome.readmitted_on is not None:
            raise BadRequestError(f"{name}readmitted_on: only with readmitted true")
        if closes > today:
            raise BadRequestError(
                f"{name}encounter {eid!r}: readmitted false before its 30-day window closes on"
                f" {closes.isoformat()}; send it from that day (or true once readmitted)"
            )
        return
    day = outcome.readmitted_on
    if day is not None and not discharged <= day <= min(closes, today):
        raise BadRequestError(
            f"{name}readmitted_on: {day.isoformat()} is outside the 30-day window of encounter"
            f" {eid!r} ({discharged.isoformat()} to {closes.isoformat()}) or in the future"
        )


def _store(
    session: Session,
    outcome: OutcomeIn,
    version: str,
    current: OutcomeRecord | None,
    actor: str,
    now: datetime,
    name: str,
) -> str:
    """Add or correct one outcome and its event; the status to answer."""
    eid, readmitted, day = outcome.encounter_id, outcome.readmitted, outcome.readmitted_on
    key = {"encounter_id": eid, "model_version": version}
    value = {"readmitted": readmitted, "readmitted_on": day}
    event = OutcomeEvent(**key, **value, kind="recorded", actor=actor, at=now)
    if current is None:
        session.add(OutcomeRecord(**key, **value, recorded_at=now, recorded_by=actor))
        session.add(event)
        return "recorded"
    if (current.readmitted, current.readmitted_on) == (readmitted, day):
        return "unchanged"
    if not outcome.correct:
        was = "true" if current.readmitted else "false"
        raise ConflictError(
            f"{name}encounter {eid!r} (model {version!r}) already has readmitted {was}"
            f"{f' on {current.readmitted_on}' if current.readmitted_on else ''}; send"
            ' "correct": true to replace it'
        )
    event.kind = "corrected"
    event.previous_readmitted, event.previous_readmitted_on = (
        current.readmitted,
        current.readmitted_on,
    )
    current.readmitted, current.readmitted_on = readmitted, day
    current.recorded_at, current.recorded_by = now, actor
    session.add(event)
    return "corrected"
