"""Live performance figures of stored scores against matured outcomes (pure NumPy).

Every figure comes from `app.training.metrics`, the functions `triage evaluate` uses, so the
live AUROC, Brier and ECE of a set of encounters equal the offline ones on the same answers.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np

from app.outcomes.service import WINDOW_DAYS
from app.training.metrics import (
    auroc,
    bootstrap_auroc_ci_grouped,
    brier,
    calibration_intercept,
    calibration_slope,
    ece,
    reliability,
)

# NOTE: a fixed seed and a modest number of resamples: the job reruns every few minutes and
# its interval must not wander between runs on the same data.
BOOTSTRAP_RESAMPLES: Final = 200
BOOTSTRAP_SEED: Final = 0
SUBGROUPS: Final = ("age", "gender", "race", "admission_type")
UNKNOWN: Final = "unknown"
_EPOCH: Final = date(1970, 1, 1)


@dataclass(frozen=True)
class Rows:
    """Every stored score as columns; categorical columns as codes into their labels."""

    version: np.ndarray  # int codes into `versions`
    versions: Sequence[str]
    probability: np.ndarray  # float64, the answered probability
    flagged: np.ndarray  # bool
    day: np.ndarray  # int64 days since 1970-01-01 of discharged_on
    outcome: np.ndarray  # int8: -1 none yet, 0 not readmitted, 1 readmitted
    overdue: np.ndarray  # bool: scored before the backlog cutoff
    subgroups: Mapping[str, tuple[np.ndarray, Sequence[str]]]  # name -> (codes, labels)


def day_number(day: date) -> int:
    """Days since 1970-01-01."""
    return (day - _EPOCH).days


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def cohort_figures(y: np.ndarray, p: np.ndarray, min_outcomes: int) -> dict[str, Any]:
    """n, events and every figure of one cohort; the figures null below `min_outcomes`."""
    n, events = len(y), int(y.sum())
    out: dict[str, Any] = {"n": n, "events": events}
    if n < min_outcomes or n == 0:
        return {**out, **dict.fromkeys(_FIGURES)}
    lo, hi = bootstrap_auroc_ci_grouped(y, p, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    both = _finite(lo) is not None and _finite(hi) is not None
    return {
        **out,
        "auroc": _finite(auroc(y, p)),
        "auroc_ci": [lo, hi] if both else None,
        "brier": _finite(brier(y, p)),
        "calibration_intercept": _finite(calibration_intercept(y, p)),
        "calibration_slope": _finite(calibration_slope(y, p)),
        "ece": _finite(ece(y, p)),
        "observed_rate": events / n,
        "predicted_rate": float(np.mean(p)),
    }


_FIGURES: Final = (
    "auroc", "auroc_ci", "brier", "calibration_intercept", "calibration_slope", "ece",
    "observed_rate", "predicted_rate",
)  # fmt: skip


def window_bounds(today: date, days: int) -> tuple[date, date]:
    """The discharges a window covers: the `days` days up to the last whose 30-day window
    has closed, so every encounter in it had its whole follow-up."""
    to = today - timedelta(days=WINDOW_DAYS)
    return to - timedelta(days=days - 1), to


def window_figures(
    rows: Rows, chosen: np.ndarray, frm: date, to: date, min_outcomes: int
) -> dict[str, Any]:
    """Cohorts, reliability bins and months of the matured rows `chosen` discharged in [frm, to]."""
    inside = chosen & (rows.day >= day_number(frm)) & (rows.day <= day_number(to))
    index = np.flatnonzero(inside)
    y = rows.outcome[index].astype(np.int64)
    p = rows.probability[index]
    flagged = rows.flagged[index]
    cohorts = {
        "all": cohort_figures(y, p, min_outcomes),
        "flagged": cohort_figures(y[flagged], p[flagged], min_outcomes),
        "unflagged": cohort_figures(y[~flagged], p[~flagged], min_outcomes),
    }
    for name in SUBGROUPS:
        codes, labels = rows.subgroups[name]
        mine = codes[index]
        for code in np.unique(mine):
            members = mine == code
            cohorts[f"{name}:{labels[code]}"] = cohort_figures(y[members], p[members], min_outcomes)
    confidence, observed, counts = reliability(y, p)
    bins = [
        {"predicted": float(c), "observed": float(o), "count": int(k)}
        for c, o, k in zip(confidence, observed, counts, strict=True)
        if k > 0
    ]
    events = int(y.sum())
    return {
        "from": frm.isoformat(),
        "to": to.isoformat(),
        "cohorts": cohorts,
        "reliability": bins,
        "over_time": _months(y, p, flagged, rows.day[index], min_outcomes),
        "flagged_readmitted_share": int(y[flagged].sum()) / events if events else None,
    }


def _months(
    y: np.ndarray, p: np.ndarray, flagged: np.ndarray, day: np.ndarray, min_outcomes: int
) -> list[dict[str, Any]]:
    """Figures per calendar month of discharge (cohort all), oldest first."""
    months = day.astype("datetime64[D]").astype("datetime64[M]")
    out = []
    for month in np.unique(months):
        members = months == month
        ym, pm, fm = y[members], p[members], flagged[members]
        figures = cohort_figures(ym, pm, min_outcomes)
        events = int(ym.sum())
        out.append(
            {
                "month": str(month),
                "n": len(ym),
                "auroc": figures["auroc"],
                "brier": figures["brier"],
                "calibration_slope": figures["calibration_slope"],
                "ece": figures["ece"],
                "flag_rate": float(fm.mean()),
                "flagged_readmitted_share": int(ym[fm].sum()) / events if events else None,
            }
        )
    return out


def performance(
    rows: Rows,
    *,
    today: date,
    windows_days: Sequence[int],
    min_outcomes: int,
    references: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """The figures of every model version: its reference, its backlog and each window's."""
    matured = (rows.outcome == 1) | (
        (rows.outcome == 0) & (rows.day + WINDOW_DAYS <= day_number(today))
    )
    out: dict[str, Any] = {}
    for code, version in enumerate(rows.versions):
        mine = rows.version == code
        windows = {}
        for days in windows_days:
            frm, to = window_bounds(today, days)
            windows[f"{days}d"] = window_figures(rows, mine & matured, frm, to, min_outcomes)
        reference = references.get(version, {})
        out[version] = {
            "reference": {k: reference.get(k) for k in ("auroc", "brier", "ece")},
            "backlog": int(np.count_nonzero(mine & (rows.outcome < 0) & rows.overdue)),
            "windows": windows,
        }
    return out
