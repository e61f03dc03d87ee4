"""Model against clinicians: on resolved review cases with a matured outcome and a clinician's
own risk estimate, the Brier score of each and how often the clinician agreed with the model.

Agreement: the clinician's estimate lies inside the model's stored 5th-95th percentile band
(`band_low`..`band_high`) of the case; cases stored without a band are left out of it. The
model's figure is the probability on the review item, the one the clinician saw.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import Connection, select

from app.monitoring.performance import day_number, window_bounds
from app.outcomes.models import OutcomeRecord, ScoredEncounter
from app.outcomes.service import WINDOW_DAYS
from app.review.models import ReviewItem, ReviewStatus
from app.training.metrics import brier


@dataclass(frozen=True)
class ReviewedRows:
    """One row per (encounter, model version): its latest resolved case with an estimate."""

    version: list[str]
    day: np.ndarray  # int64 days since 1970-01-01 of discharged_on
    readmitted: np.ndarray  # int64 0/1
    model: np.ndarray  # float64, the review item's probability
    clinician: np.ndarray  # float64, the clinician's estimate
    band_low: np.ndarray  # float64, nan without a band
    band_high: np.ndarray


def read_reviewed(connection: Connection) -> ReviewedRows:
    """The resolved cases with a clinician's estimate and a reported outcome."""
    query = (
        select(
            ReviewItem.encounter_id,
            ReviewItem.model_version,
            ScoredEncounter.discharged_on,
            OutcomeRecord.readmitted,
            ReviewItem.probability,
            ReviewItem.clinician_risk,
            ReviewItem.band_low,
            ReviewItem.band_high,
        )
        .join(
            OutcomeRecord,
            (OutcomeRecord.encounter_id == ReviewItem.encounter_id)
            & (OutcomeRecord.model_version == ReviewItem.model_version),
        )
        .join(
            ScoredEncounter,
            (ScoredEncounter.encounter_id == ReviewItem.encounter_id)
            & (ScoredEncounter.model_version == ReviewItem.model_version),
        )
        .where(
            ReviewItem.status == ReviewStatus.RESOLVED.value,
            ReviewItem.clinician_risk.is_not(None),
        )
        .order_by(ReviewItem.id)
    )
    # NOTE: an encounter resolved in two versions has one outcome: its latest case counts.
    latest = {(r[0], r[1]): r for r in connection.execute(query)}
    rows = list(latest.values())
    nan = float("nan")
    return ReviewedRows(
        version=[r[1] for r in rows],
        day=np.asarray([day_number(r[2]) for r in rows], dtype=np.int64),
        readmitted=np.asarray([int(bool(r[3])) for r in rows], dtype=np.int64),
        model=np.asarray([r[4] for r in rows], dtype=np.float64),
        clinician=np.asarray([r[5] for r in rows], dtype=np.float64),
        band_low=np.asarray([nan if r[6] is None else r[6] for r in rows], dtype=np.float64),
        band_high=np.asarray([nan if r[7] is None else r[7] for r in rows], dtype=np.float64),
    )


def clinician_figures(rows: ReviewedRows, chosen: np.ndarray, min_outcomes: int) -> dict[str, Any]:
    """n, both Brier scores and the agreement rate of the `chosen` rows (null below
    `min_outcomes`, like every other figure)."""
    n = int(chosen.sum())
    if n == 0 or n < min_outcomes:
        return {"n": n, "brier_model": None, "brier_clinician": None, "agreement": None}
    y = rows.readmitted[chosen]
    low, high, mine = rows.band_low[chosen], rows.band_high[chosen], rows.clinician[chosen]
    banded = ~(np.isnan(low) | np.isnan(high))
    inside = (mine[banded] >= low[banded]) & (mine[banded] <= high[banded])
    return {
        "n": n,
        "brier_model": float(brier(y, rows.model[chosen])),
        "brier_clinician": float(brier(y, mine)),
        "agreement": float(inside.mean()) if banded.any() else None,
    }


def add_clinicians(
    versions: Mapping[str, Any],
    rows: ReviewedRows,
    *,
    today: date,
    windows_days: Sequence[int],
    min_outcomes: int,
) -> None:
    """Put a `clinicians` block into every window of every version of `versions` (in place),
    over the same matured outcomes and discharge dates as the window's other figures."""
    matured = (rows.readmitted == 1) | (rows.day + WINDOW_DAYS <= day_number(today))
    version = np.asarray(rows.version, dtype=object)
    for name, figures in versions.items():
        for days in windows_days:
            frm, to = window_bounds(today, days)
            inside = (rows.day >= day_number(frm)) & (rows.day <= day_number(to))
            chosen = matured & inside & (version == name)
            figures["windows"][f"{days}d"]["clinicians"] = clinician_figures(
                rows, chosen, min_outcomes
            )
