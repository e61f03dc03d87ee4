"""Every stored score with its outcome, read with one SELECT into NumPy columns."""

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import Connection, bindparam, text

from app.db.base import UTCDateTime
from app.monitoring.performance import UNKNOWN, Rows

# NOTE: the day number and the overdue test are computed by the database, so no date or
# timestamp is parsed per row in Python.
_DAY: Final = {
    "sqlite": "CAST(julianday(s.discharged_on) - 2440587.5 AS INTEGER)",
    "postgresql": "(s.discharged_on - DATE '1970-01-01')",
}
_SELECT: Final = """
    SELECT s.model_version, s.probability, s.flagged, {day},
           CASE WHEN s.scored_at < :cutoff THEN 1 ELSE 0 END,
           CASE WHEN o.readmitted IS NULL THEN -1 WHEN o.readmitted THEN 1 ELSE 0 END,
           s.age, s.gender, s.race, s.admission_type_id
    FROM scored_encounters AS s
    LEFT JOIN outcomes AS o
        ON o.encounter_id = s.encounter_id AND o.model_version = s.model_version
"""
_STATEMENTS: Final = {
    dialect: text(_SELECT.format(day=day)).bindparams(bindparam("cutoff", type_=UTCDateTime()))
    for dialect, day in _DAY.items()
}
SUBGROUP_COLUMNS: Final = ("age", "gender", "race", "admission_type")


def read_rows(connection: Connection, overdue_before: datetime) -> Rows:
    """Every scored encounter, `overdue` where it was scored before `overdue_before`."""
    statement = _STATEMENTS[connection.dialect.name]
    result = connection.execute(statement, {"cutoff": overdue_before})
    records = result.fetchall()
    columns: list[Sequence[Any]] = list(zip(*records, strict=True)) if records else [()] * 10
    version, versions = _codes(columns[0])
    subgroups = {
        name: _codes(column, UNKNOWN)
        for name, column in zip(SUBGROUP_COLUMNS, columns[6:], strict=True)
    }
    return Rows(
        version=version,
        versions=versions,
        probability=np.asarray(columns[1], dtype=np.float64),
        flagged=np.asarray(columns[2], dtype=bool),
        day=np.asarray(columns[3], dtype=np.int64),
        overdue=np.asarray(columns[4], dtype=bool),
        outcome=np.asarray(columns[5], dtype=np.int8),
        subgroups=subgroups,
    )


def _codes(values: Sequence[Any], missing: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Integer codes and their labels (sorted); None becomes `missing`."""
    codes, labels = pd.factorize(np.asarray(values, dtype=object), sort=True, use_na_sentinel=True)
    names = [str(label) for label in labels]
    if missing is not None and (codes < 0).any():
        codes = np.where(codes < 0, len(names), codes)
        names.append(missing)
    return codes.astype(np.int64), names
