"""A populated model health page: real encounters discharged over a year, their real outcomes."""

import csv
import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

MIN_OUTCOMES = 20
"""Low enough that a few hundred outcomes give figures per month and per larger subgroup."""


def with_discharges(encounters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The encounters discharged 31 to 360 days ago, spread over about eleven months."""
    today = datetime.now(UTC).date()
    return [
        {**e, "discharge_date": (today - timedelta(days=31 + (i * 7) % 330)).isoformat()}
        for i, e in enumerate(encounters)
    ]


def readmissions(data_file: Path, encounter_ids: set[str]) -> dict[str, bool]:
    """Whether each encounter was readmitted within 30 days, from the data file's label."""
    opener = gzip.open if data_file.suffix == ".gz" else open
    found: dict[str, bool] = {}
    with opener(data_file, "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["encounter_id"] in encounter_ids:
                found[row["encounter_id"]] = row["readmitted"] == "<30"
                if len(found) == len(encounter_ids):
                    break
    return found


def outcomes_body(data_file: Path, encounters: list[dict[str, Any]]) -> dict[str, Any]:
    """`POST /outcomes` for every encounter, as the EHR would report them."""
    labels = readmissions(data_file, {e["encounter_id"] for e in encounters})
    return {
        "outcomes": [
            {"encounter_id": e["encounter_id"], "readmitted": labels[e["encounter_id"]]}
            for e in encounters
        ]
    }
