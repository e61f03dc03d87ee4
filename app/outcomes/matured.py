"""The matured outcomes of one model version, with what was stored when it scored them."""

import json
from dataclasses import dataclass
from datetime import date

import numpy as np
from sqlalchemy import Connection, select

from app.inference.guard import OOD_PREFIX
from app.outcomes.models import OutcomeRecord, ScoredEncounter


@dataclass(frozen=True)
class MaturedOutcomes:
    """What the service stored for each scored encounter whose outcome is known."""

    raw_probability: np.ndarray  # the MC mean before calibration: what Platt is fitted on
    std: np.ndarray
    guard_flagged: np.ndarray  # the domain guard gave a reason (spent first from the budget)
    readmitted: np.ndarray
    since: date | None  # the earliest discharge date asked for (None: all)
    until: date | None  # the latest discharge date among them


def matured_outcomes(
    connection: Connection, model_version: str, since: date | None
) -> MaturedOutcomes:
    """Every encounter `model_version` scored (discharged on or after `since`) whose outcome is
    known; a stored "not readmitted" is matured by construction (refused before the window)."""
    s, o = ScoredEncounter, OutcomeRecord
    query = (
        select(s.raw_probability, s.std, s.reasons, o.readmitted, s.discharged_on)
        .join(o, (o.encounter_id == s.encounter_id) & (o.model_version == s.model_version))
        .where(s.model_version == model_version)
        .order_by(s.id)
    )
    if since is not None:
        query = query.where(s.discharged_on >= since)
    rows = connection.execute(query).all()
    days = [r[4] for r in rows]
    return MaturedOutcomes(
        raw_probability=np.array([r[0] for r in rows], dtype=np.float64),
        std=np.array([r[1] for r in rows], dtype=np.float64),
        guard_flagged=np.array(
            [any(k.startswith(OOD_PREFIX) for k in json.loads(r[2])) for r in rows], dtype=bool
        ),
        readmitted=np.array([bool(r[3]) for r in rows], dtype=bool),
        since=since if since is not None else min(days, default=None),
        until=max(days, default=None),
    )
