"""Every stored score with its outcome, read with one SELECT into NumPy columns.

NOTE: three values a row, not ten: the database packs the small columns into one integer and
the categorical ones into one text, since creating the Python objects of a row, not the
query, is most of the cost of reading a million rows.
"""

import gc
from collections.abc import Sequence
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd
from sqlalchemy import Connection

from app.monitoring.performance import UNKNOWN, Rows

_SEPARATOR: Final = "\x1f"
# Per dialect: the discharge day number, the "scored before" test and the separator.
_DIALECT: Final = {
    "sqlite": (
        "CAST(julianday(s.discharged_on) - 2440587.5 AS INTEGER)",
        "s.scored_at < '{cutoff}'",
        "char(31)",
    ),
    "postgresql": (
        "(s.discharged_on - DATE '1970-01-01')",
        "s.scored_at < TIMESTAMPTZ '{cutoff} 00:00:00+00'",
        "chr(31)",
    ),
}
# day * 16 + flagged * 8 + overdue * 4 + outcome (0 none, 1 not readmitted, 2 readmitted)
_SELECT: Final = """
    SELECT s.probability,
        {day} * 16 + CASE WHEN s.flagged THEN 8 ELSE 0 END
            + CASE WHEN {overdue} THEN 4 ELSE 0 END
            + CASE WHEN o.readmitted IS NULL THEN 0 WHEN o.readmitted THEN 2 ELSE 1 END,
        s.model_version || {sep} || coalesce(s.age, '') || {sep} || coalesce(s.gender, '')
            || {sep} || coalesce(s.race, '') || {sep} || coalesce(s.admission_type_id, '')
    FROM scored_encounters AS s
    LEFT JOIN outcomes AS o
        ON o.encounter_id = s.encounter_id AND o.model_version = s.model_version
"""
_READ_TIMEOUT: Final = "SET LOCAL statement_timeout = '300s'"
SUBGROUP_COLUMNS: Final = ("age", "gender", "race", "admission_type")


def read_rows(connection: Connection, overdue_before: date) -> Rows:
    """Every scored encounter, `overdue` where it was scored before the day `overdue_before`."""
    day, overdue, sep = _DIALECT[connection.dialect.name]
    # NOTE: the cutoff is a date this process formats, never input, so it is written inline
    # and the query goes to the driver's own cursor (no result rows built by SQLAlchemy).
    sql = _SELECT.format(
        day=day, overdue=overdue.format(cutoff=overdue_before.isoformat()), sep=sep
    )
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    # NOTE: a million rows are millions of new objects at once, which would set off one
    # collection after another (the service's own objects included) for nothing: they are
    # freed by reference counting once read.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if connection.dialect.name == "postgresql":
            # NOTE: the service's statement timeout is sized for a request, not for this read.
            cursor.execute(_READ_TIMEOUT)
        cursor.execute(sql)
        records = cursor.fetchall()
        columns: list[Sequence[Any]] = list(zip(*records, strict=True)) if records else [()] * 3
        del records
    finally:
        cursor.close()
        if collecting:
            gc.enable()
    packed = np.asarray(columns[1], dtype=np.int64)
    keys, labels = pd.factorize(np.asarray(columns[2], dtype=object), sort=True)
    parts = [str(label).split(_SEPARATOR) for label in labels]
    version, versions = _recoded(keys, [p[0] for p in parts])
    subgroups = {
        name: _recoded(keys, [p[k + 1] or UNKNOWN for p in parts])
        for k, name in enumerate(SUBGROUP_COLUMNS)
    }
    return Rows(
        version=version,
        versions=versions,
        probability=np.asarray(columns[0], dtype=np.float64),
        flagged=(packed & 8) > 0,
        overdue=(packed & 4) > 0,
        outcome=((packed & 3) - 1).astype(np.int8),
        day=packed >> 4,
        subgroups=subgroups,
    )


def _recoded(keys: np.ndarray, values: list[str]) -> tuple[np.ndarray, list[str]]:
    """Codes of each row's value, given the row's key and each key's value; labels sorted."""
    labels = sorted(set(values))
    of_key = np.array([labels.index(v) for v in values], dtype=np.int64)
    return (of_key[keys] if len(keys) else keys.astype(np.int64)), labels
