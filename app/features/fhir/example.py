"""A published data row -> a CDS Hooks `encounter-discharge` request that maps back to it.

The request is synthetic around the row's values: dates are made up (the data has none),
placeholder labs, procedures, medications and diagnoses fill each count, and representative
results (HbA1c 9.0 %, glucose 350 mg/dL, ...) stand for each band. `record_from_fhir` on it
gives back exactly the row's values for every column.
"""

import uuid
import zlib
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from app.features.columns import MEDICATION_COLUMNS
from app.features.fhir import codes
from app.features.fhir import medication_resources as rx
from app.features.fhir import resources as build

Row = Mapping[str, Any]
HOOK = "encounter-discharge"
FIRST_ADMISSION = date(2007, 1, 1)  # not a leap year: no birthday falls on 29 February
A1C_PERCENT = {">8": 9.0, ">7": 7.5, "Norm": 6.0}
GLUCOSE_MG_DL = {">300": 350.0, ">200": 250.0, "Norm": 110.0}


def fhir_from_record(row: Row) -> dict[str, Any]:
    """Build the CDS Hooks request whose prefetch maps back to `row`."""
    eid = str(row["encounter_id"])
    seed = zlib.crc32(eid.encode())
    start = datetime.combine(FIRST_ADMISSION + timedelta(days=seed % 365), time(8), UTC)
    ctx = build.Context(eid, _patient_id(row, eid), start, seed)
    prefetch = {
        "patient": build.patient(ctx, row),
        "encounter": build.encounter(ctx, row, _diagnosis_count(row)),
        "conditions": build.bundle(build.conditions(ctx, row, _diagnosis_count(row))),
        "observations": build.bundle(_observations(ctx, row)),
        "medicationRequests": build.bundle(_medication_requests(ctx, row)),
        "procedures": build.bundle(build.procedures(ctx, _count(row, "num_procedures"))),
        "priorEncounters": build.bundle(build.prior_encounters(ctx, row)),
    }
    return {
        "hook": HOOK,
        "hookInstance": str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:triage:example:{eid}")),
        "context": {
            "userId": "Practitioner/example",
            "patientId": ctx.patient_id,
            "encounterId": eid,
        },
        "prefetch": prefetch,
    }


def _observations(ctx: "build.Context", row: Row) -> list[dict[str, Any]]:
    results = []
    if row.get("A1Cresult") not in (None, "None"):
        results.append(build.a1c(ctx, A1C_PERCENT[row["A1Cresult"]], ifcc=bool(ctx.seed & 1)))
    if row.get("max_glu_serum") not in (None, "None"):
        value = GLUCOSE_MG_DL[row["max_glu_serum"]]
        results.append(build.glucose(ctx, value, molar=bool(ctx.seed & 2)))
    fillers = _count(row, "num_lab_procedures") - len(results)
    if fillers < 0:
        raise ValueError(f"row {ctx.encounter_id}: fewer lab procedures than HbA1c and glucose")
    labs = results + [build.lab(ctx, k) for k in range(fillers)]
    if row.get("weight") is not None:
        labs.append(build.weight(ctx, row["weight"], kilograms=bool(ctx.seed & 4)))
    return labs


def _medication_requests(ctx: "build.Context", row: Row) -> list[dict[str, Any]]:
    orders: list[dict[str, Any]] = []
    states = {c: row.get(c) or "No" for c in MEDICATION_COLUMNS}
    for column, state in states.items():
        if state != "No":
            orders += rx.diabetes_orders(ctx, column, state)
    ordered = sum(state != "No" for state in states.values())
    changed = any(state in ("Up", "Down") for state in states.values())
    if row.get("change") == "Ch" and not changed:
        stopped = next(c for c in codes.INGREDIENT_RXCUI if states.get(c) == "No")
        orders.append(rx.stopped_order(ctx, stopped))
    others = _count(row, "num_medications") - ordered
    if others < 0:
        raise ValueError(f"row {ctx.encounter_id}: more diabetes medications than medications")
    return orders + [rx.other_order(ctx, k) for k in range(others)]


def _diagnosis_count(row: Row) -> int:
    listed = [k + 1 for k in range(3) if row.get(f"diag_{k + 1}") is not None]
    return max([row.get("number_diagnoses") or 0, *listed])


def _patient_id(row: Row, eid: str) -> str:
    number = row.get("patient_nbr")
    return f"patient-{number}" if number is not None else f"patient-of-{eid}"


def _count(row: Row, column: str) -> int:
    value = row.get(column)
    if not isinstance(value, int):
        raise ValueError(f"row {row.get('encounter_id')}: {column} must be an integer count")
    return value
