"""FHIR R4 <-> published columns: real rows round-trip, resources validate, errors say why."""

import copy
from typing import Any

import numpy as np
import pytest
from pydantic import TypeAdapter

from app.api.schemas import Encounter
from app.features import FeatureSpec, columns_from_records
from app.features.columns import FEATURE_SOURCE_COLUMNS, MEDICATION_COLUMNS
from app.features.fhir import FhirMappingError, record_from_prefetch
from app.features.fhir.codes import ICD9_SYSTEM, ICD10_SYSTEM
from app.features.fhir.example import fhir_from_record
from app.features.fhir.icd10 import ICD10_RANGES, icd9_for_icd10
from app.features.fhir.validation import validate_prefetch
from app.features.icd9 import icd9_chapter

ID_AND_COUNT_FREE = {"encounter_id", "patient_nbr", "diag_1", "diag_2", "diag_3"}


def _prefetch(row: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(fhir_from_record(row)["prefetch"])


def _entries(prefetch: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [e["resource"] for e in prefetch[key]["entry"]]


def _covering(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows that between them hold every value of every column but the ids and codes."""
    seen: set[tuple[str, Any]] = set()
    out = []
    for row in rows:
        new = {(k, v) for k, v in row.items() if k not in ID_AND_COUNT_FREE} - seen
        if new:
            seen |= new
            out.append(row)
    return out


# --------------------------------------------------------------------------- real rows


@pytest.mark.data
def test_real_rows_round_trip_exactly(encounters: list[dict[str, Any]]) -> None:
    assert len(encounters) >= 2000
    mapped = [record_from_prefetch(fhir_from_record(row)["prefetch"]) for row in encounters]
    differing = [
        (
            row["encounter_id"],
            {k: (row.get(k), m.record.get(k)) for k in row if row[k] != m.record.get(k)},
        )
        for row, m in zip(encounters, mapped, strict=True)
        if m.encounter() != row
    ]
    assert differing == []
    # Every absent value is null in the record and says so in the provenance.
    for m in mapped[:200]:
        assert set(m.record) == {"encounter_id", "patient_nbr", *FEATURE_SOURCE_COLUMNS}
        assert all(m.provenance[k].absent for k, v in m.record.items() if v is None)
        TypeAdapter(Encounter).validate_python(m.record)
    spec = FeatureSpec.fit(columns_from_records(encounters))
    want = spec.encode(columns_from_records(encounters))
    got = spec.encode(columns_from_records(m.record for m in mapped))
    assert np.array_equal(want, got)


@pytest.mark.data
def test_every_built_resource_validates_as_r4b(encounters: list[dict[str, Any]]) -> None:
    rows = _covering(encounters)
    assert any(r.get("weight") for r in rows) and any(r.get("metformin") == "Up" for r in rows)
    total = sum(validate_prefetch(fhir_from_record(row)["prefetch"]) for row in rows)
    assert total > 10 * len(rows)


@pytest.mark.data
def test_request_is_a_cds_hooks_encounter_discharge(encounters: list[dict[str, Any]]) -> None:
    row = encounters[0]
    request = fhir_from_record(row)
    assert request["hook"] == "encounter-discharge"
    assert request["context"]["encounterId"] == row["encounter_id"]
    assert request["prefetch"]["encounter"]["id"] == row["encounter_id"]
    assert fhir_from_record(row) == request  # same row, same request (hookInstance included)


# --------------------------------------------------------------------------- errors

ROW: dict[str, Any] = {
    "encounter_id": "e1",
    "patient_nbr": 7,
    "race": "Caucasian",
    "gender": "Female",
    "age": "[70-80)",
    "admission_type_id": 1,
    "discharge_disposition_id": 1,
    "admission_source_id": 7,
    "time_in_hospital": 3,
    "num_lab_procedures": 5,
    "num_procedures": 1,
    "num_medications": 4,
    "number_outpatient": 1,
    "number_emergency": 0,
    "number_inpatient": 2,
    "diag_1": "428",
    "diag_2": "250.83",
    "diag_3": "8",
    "number_diagnoses": 5,
    "max_glu_serum": ">300",
    "A1Cresult": ">8",
    **dict.fromkeys(MEDICATION_COLUMNS, "No"),
    "metformin": "Up",
    "glyburide-metformin": "Steady",
    "change": "Ch",
    "diabetesMed": "Yes",
}


def test_handmade_row_round_trips_with_combinations_and_leading_zeros() -> None:
    prefetch = _prefetch(ROW)
    codes = [c["code"]["coding"][0]["code"] for c in _entries(prefetch, "conditions")[:3]]
    assert codes == ["428", "250.83", "008"]  # the EHR's form; the record keeps the data's "8"
    assert record_from_prefetch(prefetch).encounter() == ROW


def test_missing_encounter_is_named() -> None:
    prefetch = _prefetch(ROW)
    del prefetch["encounter"]
    with pytest.raises(FhirMappingError, match="Encounter: missing; the prefetch must carry"):
        record_from_prefetch(prefetch)


def test_condition_in_an_unknown_code_system_is_named() -> None:
    prefetch = _prefetch(ROW)
    condition = _entries(prefetch, "conditions")[1]
    condition["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}
    with pytest.raises(FhirMappingError) as error:
        record_from_prefetch(prefetch)
    message = str(error.value)
    assert "Condition/e1-dx-2.code" in message and "http://snomed.info/sct" in message
    assert "add an ICD-9-CM or ICD-10-CM coding" in message


@pytest.mark.parametrize("loinc", ["4548-4", "2345-7"])
def test_observation_in_unknown_units_is_named(loinc: str) -> None:
    prefetch = _prefetch(ROW)
    found = [o for o in _entries(prefetch, "observations") if "coding" in o["code"]]
    target = next(o for o in found if o["code"]["coding"][0]["code"] in (loinc, "59261-8"))
    target["code"]["coding"][0]["code"] = loinc
    target["valueQuantity"] = {"value": 1.0, "unit": "g/L", "code": "g/L"}
    with pytest.raises(
        FhirMappingError, match=rf"Observation/{target['id']}.valueQuantity: unit 'g/L'"
    ):
        record_from_prefetch(prefetch)


def test_absent_prefetch_makes_its_features_null_and_says_so() -> None:
    prefetch = _prefetch(ROW)
    del prefetch["observations"], prefetch["medicationRequests"]
    mapped = record_from_prefetch(prefetch)
    for column in ("num_lab_procedures", "A1Cresult", "metformin", "num_medications", "change"):
        assert mapped.record[column] is None
        assert mapped.provenance[column].absent
    assert mapped.record["num_procedures"] == 1


# --------------------------------------------------------------------------- ICD-10, units


@pytest.mark.parametrize(
    ("icd10", "icd9"),
    [
        ("E11.9", "250.00"),
        ("E10.65", "250.03"),
        ("I50.9", "428"),
        ("J44.1", "491.21"),
        ("N18.6", "585.6"),
        ("A41.9", "038.9"),
        ("C34.90", "162.9"),
        ("F32.9", "311"),
        ("K21.9", "530.81"),
        ("M17.11", "715.16"),
        ("S72.001A", "820.8"),
        ("T81.4XXA", "998.59"),
        ("Z79.4", "V58.67"),
        ("W19.XXXA", "E888.9"),
        ("R07.9", "786.50"),
        ("D64.9", "285.9"),
        ("E87.1", "276.1"),
        ("G40.909", "345.90"),
        ("H40.9", "365.9"),
        ("L03.90", "682.9"),
        ("O24.419", "648.83"),
        ("Q21.1", "745.5"),
        ("P07.30", "765.10"),
    ],
)
def test_icd10_lands_in_the_group_of_its_icd9_counterpart(icd10: str, icd9: str) -> None:
    prefetch = _prefetch(ROW)
    _entries(prefetch, "conditions")[0]["code"] = {
        "coding": [{"system": ICD10_SYSTEM, "code": icd10}]
    }
    mapped = record_from_prefetch(prefetch)
    assert icd9_chapter(mapped.record["diag_1"]) == icd9_chapter(icd9.lstrip("0"))
    assert icd10 in mapped.provenance["diag_1"].note


def test_every_icd10_range_maps_to_a_valid_icd9_code() -> None:
    for first, last, code in ICD10_RANGES:
        assert icd9_chapter(code) is not None
        assert icd9_for_icd10(first) == icd9_for_icd10(last) == code
    assert icd9_for_icd10("U07.1") is None


def test_icd9_wins_over_icd10_when_both_are_given() -> None:
    prefetch = _prefetch(ROW)
    both = [{"system": ICD10_SYSTEM, "code": "I50.9"}, {"system": ICD9_SYSTEM, "code": "250.01"}]
    _entries(prefetch, "conditions")[0]["code"] = {"coding": both}
    assert record_from_prefetch(prefetch).record["diag_1"] == "250.01"


def _with_result(loinc: str, value: float, unit: str) -> dict[str, Any]:
    prefetch = _prefetch({**ROW, "A1Cresult": "None", "max_glu_serum": "None"})
    observation = {
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "valueQuantity": {
            "value": value,
            "unit": unit,
            "system": "http://unitsofmeasure.org",
            "code": unit,
        },
    }
    prefetch["observations"]["entry"].append({"resource": observation})
    return record_from_prefetch(prefetch).record


@pytest.mark.parametrize(
    ("value", "unit", "band"),
    [
        (75.0, "mmol/mol", ">8"),
        (58.5, "mmol/mol", ">7"),
        (42.0, "mmol/mol", "Norm"),
        (9.1, "%", ">8"),
    ],
)
def test_hba1c_in_mmol_per_mol_is_converted_to_ngsp_percent(
    value: float, unit: str, band: str
) -> None:
    assert _with_result("4548-4", value, unit)["A1Cresult"] == band


def test_hba1c_just_under_the_cut_stays_in_the_band_below() -> None:
    # 63.9 mmol/mol is 7.997 %: under 8, so >7 and not >8.
    assert _with_result("59261-8", 63.9, "mmol/mol")["A1Cresult"] == ">7"


@pytest.mark.parametrize(
    ("value", "unit", "band"),
    [
        (16.7, "mmol/L", ">300"),
        (11.2, "mmol/L", ">200"),
        (11.1, "mmol/L", "Norm"),
        (301.0, "mg/dL", ">300"),
    ],
)
def test_glucose_in_mmol_per_litre_is_converted_to_mg_per_dl(
    value: float, unit: str, band: str
) -> None:
    assert _with_result("2345-7", value, unit)["max_glu_serum"] == band


# --------------------------------------------------------------------------- rules


def test_a_partial_birth_date_gives_a_band_only_when_it_is_unambiguous() -> None:
    prefetch = _prefetch(ROW)
    admitted = prefetch["encounter"]["period"]["start"][:4]
    prefetch["patient"]["birthDate"] = str(int(admitted) - 75)  # a year only: 74 or 75
    assert record_from_prefetch(prefetch).record["age"] == "[70-80)"
    prefetch["patient"]["birthDate"] = str(int(admitted) - 80)  # 79 or 80
    mapped = record_from_prefetch(prefetch)
    assert mapped.record["age"] is None and "no single band" in mapped.provenance["age"].note


def test_only_visits_of_the_year_before_admission_count() -> None:
    prefetch = _prefetch(ROW)
    visits = _entries(prefetch, "priorEncounters")
    visits[0]["period"]["start"] = "1990-01-01T00:00:00Z"
    assert (
        record_from_prefetch(prefetch).record["number_outpatient"] == ROW["number_outpatient"] - 1
    )


def test_a_diagnosis_pointing_at_an_absent_condition_is_named() -> None:
    prefetch = _prefetch(ROW)
    prefetch["conditions"]["entry"].pop(0)
    with pytest.raises(FhirMappingError, match=r"refers to Condition/e1-dx-1, which is not in the"):
        record_from_prefetch(prefetch)


def test_hispanic_ethnicity_is_the_published_race() -> None:
    prefetch = _prefetch(ROW)
    hispanic = _prefetch({**ROW, "race": "Hispanic"})["patient"]["extension"]
    prefetch["patient"]["extension"] += hispanic  # US Core race White and ethnicity Hispanic
    assert record_from_prefetch(prefetch).record["race"] == "Hispanic"


def test_a_lower_dose_by_authored_date_is_down_without_prior_prescription() -> None:
    prefetch = _prefetch(ROW)
    orders = [o for o in _entries(prefetch, "medicationRequests") if "metformin-1" in o["id"]]
    del orders[0]["priorPrescription"]
    orders[0]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] = 2.5
    mapped = record_from_prefetch(prefetch)
    assert mapped.record["metformin"] == "Down" and mapped.record["change"] == "Ch"
