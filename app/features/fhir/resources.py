"""Builders of the FHIR R4 resources that `fhir_from_record` puts in a prefetch."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.features.fhir import codes

Json = dict[str, Any]
Row = Mapping[str, Any]
LAB = {"coding": [{"system": codes.OBSERVATION_CATEGORY_SYSTEM, "code": "laboratory"}]}
VITALS = {"coding": [{"system": codes.OBSERVATION_CATEGORY_SYSTEM, "code": "vital-signs"}]}
GENDERS = {"Male": "male", "Female": "female", "Unknown/Invalid": "unknown"}
RACE_DISPLAY = {
    "Caucasian": ("2106-3", "White"),
    "AfricanAmerican": ("2054-5", "Black or African American"),
    "Asian": ("2028-9", "Asian"),
}
PRIOR_CLASSES = {"number_outpatient": "AMB", "number_emergency": "EMER", "number_inpatient": "IMP"}
PLACEHOLDER_DIAGNOSIS = "401.9"  # essential hypertension, for diagnoses past the third
WEIGHT_MIDPOINT = {f"[{lo}-{lo + 25})": lo + 12.5 for lo in range(0, 200, 25)} | {">200": 212.5}


@dataclass(frozen=True)
class Context:
    """What every resource of one request shares."""

    encounter_id: str
    patient_id: str
    start: datetime
    seed: int

    @property
    def links(self) -> Json:
        """The subject and encounter references of a clinical resource."""
        return {
            "subject": {"reference": f"Patient/{self.patient_id}"},
            "encounter": {"reference": f"Encounter/{self.encounter_id}"},
        }

    def at(self, days: float = 0) -> str:
        """An instant `days` after admission, as a FHIR dateTime."""
        return (self.start + timedelta(days=days)).isoformat().replace("+00:00", "Z")


def bundle(resources: list[Json]) -> Json:
    """A searchset Bundle of `resources`."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
    }


def patient(ctx: Context, row: Row) -> Json:
    """The Patient: birth date inside the age band, gender, race, the data set's patient number."""
    out: Json = {"resourceType": "Patient", "id": ctx.patient_id}
    if row.get("patient_nbr") is not None:
        out["identifier"] = [{"system": codes.PATIENT_NBR_SYSTEM, "value": str(row["patient_nbr"])}]
    if row.get("gender") is not None:
        out["gender"] = GENDERS[row["gender"]]
    if row.get("age") is not None:
        years = int(row["age"][1:].split("-")[0]) + 5
        out["birthDate"] = ctx.start.date().replace(year=ctx.start.year - years).isoformat()
    extension = _race(row.get("race"))
    if extension is not None:
        out["extension"] = [extension]
    return out


def encounter(ctx: Context, row: Row, n_diagnoses: int) -> Json:
    """The inpatient Encounter: period, coded ids, specialty, payer and ranked diagnoses."""
    out: Json = {
        "resourceType": "Encounter",
        "id": ctx.encounter_id,
        "status": "finished",
        "class": {"system": codes.ENCOUNTER_CLASS_SYSTEM, "code": "IMP"},
        "subject": {"reference": f"Patient/{ctx.patient_id}"},
        "period": {"start": ctx.at(), "end": ctx.at(row["time_in_hospital"] + 0.25)},
    }
    own = (codes.ADMISSION_TYPE_SYSTEM, codes.ADMISSION_SOURCE_SYSTEM, codes.DISCHARGE_SYSTEM)
    priority = _coded(
        row.get("admission_type_id"),
        own[0],
        codes.PRIORITY_SYSTEM,
        codes.ADMISSION_TYPE_TO_PRIORITY,
    )
    if priority:
        out["priority"] = priority
    stay = {
        "admitSource": _coded(
            row.get("admission_source_id"),
            own[1],
            codes.ADMIT_SOURCE_SYSTEM,
            codes.ID_TO_ADMIT_SOURCE,
        ),
        "dischargeDisposition": _coded(
            row.get("discharge_disposition_id"),
            own[2],
            codes.DISPOSITION_SYSTEM,
            codes.ID_TO_DISPOSITION,
        ),
    }
    if any(stay.values()):
        out["hospitalization"] = {k: v for k, v in stay.items() if v}
    if row.get("medical_specialty") is not None:
        coding = {"system": codes.SPECIALTY_SYSTEM, "code": row["medical_specialty"]}
        out["serviceType"] = {"coding": [coding]}
    if row.get("payer_code") is not None:
        coding = {"system": codes.PAYER_SYSTEM, "code": row["payer_code"]}
        out["extension"] = [{"url": codes.PAYER_EXTENSION, "valueCoding": coding}]
    role = {"coding": [{"system": codes.DIAGNOSIS_ROLE_SYSTEM, "code": "DD"}]}
    out["diagnosis"] = [
        {"condition": {"reference": f"Condition/{ctx.encounter_id}-dx-{k}"}, "use": role, "rank": k}
        for k in range(1, n_diagnoses + 1)
    ]
    return out


def conditions(ctx: Context, row: Row, n_diagnoses: int) -> list[Json]:
    """One Condition per diagnosis; a missing diag_k keeps its rank with no code."""
    out = []
    for k in range(1, n_diagnoses + 1):
        code = row.get(f"diag_{k}") if k <= 3 else PLACEHOLDER_DIAGNOSIS
        concept: Json = {"text": "diagnosis not recorded"}
        if code is not None:
            concept = {"coding": [{"system": codes.ICD9_SYSTEM, "code": _padded_icd9(code)}]}
        out.append(
            {
                "resourceType": "Condition",
                "id": f"{ctx.encounter_id}-dx-{k}",
                "category": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                                "code": "encounter-diagnosis",
                            }
                        ]
                    }
                ],
                "code": concept,
                **ctx.links,
            }
        )
    return out


def a1c(ctx: Context, percent: float, *, ifcc: bool) -> Json:
    """An HbA1c result in % (LOINC 4548-4) or, converted, mmol/mol (LOINC 59261-8)."""
    if ifcc:
        value = round(_inverse(percent, codes.A1C_UNITS["mmol/mol"]), 1)
        return _result(ctx, "a1c", codes.A1C_IFCC_LOINC, value, "mmol/mol", LAB)
    return _result(ctx, "a1c", "4548-4", percent, "%", LAB)


def glucose(ctx: Context, mg_dl: float, *, molar: bool) -> Json:
    """A serum glucose result (LOINC 2345-7) in mg/dL or, converted, mmol/L."""
    if molar:
        return _result(
            ctx,
            "glucose",
            "2345-7",
            round(_inverse(mg_dl, codes.GLUCOSE_UNITS["mmol/L"]), 1),
            "mmol/L",
            LAB,
        )
    return _result(ctx, "glucose", "2345-7", mg_dl, "mg/dL", LAB)


def weight(ctx: Context, band: str, *, kilograms: bool) -> Json:
    """A body weight (LOINC 29463-7) at the middle of the row's pound band."""
    pounds = WEIGHT_MIDPOINT[band]
    if kilograms:
        return _result(
            ctx,
            "weight",
            codes.WEIGHT_LOINC,
            round(_inverse(pounds, codes.WEIGHT_UNITS["kg"]), 1),
            "kg",
            VITALS,
        )
    return _result(ctx, "weight", codes.WEIGHT_LOINC, pounds, "[lb_av]", VITALS)


def lab(ctx: Context, k: int) -> Json:
    """A placeholder laboratory Observation: it only counts toward num_lab_procedures."""
    return {
        "resourceType": "Observation",
        "id": f"{ctx.encounter_id}-lab-{k}",
        "status": "final",
        "category": [LAB],
        "code": {"text": "laboratory test"},
        "effectiveDateTime": ctx.at(0.5),
        **ctx.links,
    }


def procedures(ctx: Context, n: int) -> list[Json]:
    """Placeholder Procedures: they only count toward num_procedures."""
    return [
        {
            "resourceType": "Procedure",
            "id": f"{ctx.encounter_id}-proc-{k}",
            "status": "completed",
            "code": {"text": "procedure"},
            **ctx.links,
        }
        for k in range(n)
    ]


def prior_encounters(ctx: Context, row: Row) -> list[Json]:
    """Visits of the year before admission, one Encounter each, by class."""
    out = []
    for column, cls in PRIOR_CLASSES.items():
        for k in range(row.get(column) or 0):
            out.append(
                {
                    "resourceType": "Encounter",
                    "id": f"{ctx.encounter_id}-prior-{cls.lower()}-{k}",
                    "status": "finished",
                    "class": {"system": codes.ENCOUNTER_CLASS_SYSTEM, "code": cls},
                    "subject": {"reference": f"Patient/{ctx.patient_id}"},
                    "period": {"start": ctx.at(-1 - k % 360)},
                }
            )
    return out


def _result(ctx: Context, key: str, loinc: str, value: float, unit: str, category: Json) -> Json:
    return {
        "resourceType": "Observation",
        "id": f"{ctx.encounter_id}-{key}",
        "status": "final",
        "category": [category],
        "code": {"coding": [{"system": codes.LOINC_SYSTEM, "code": loinc}]},
        "effectiveDateTime": ctx.at(0.5),
        "valueQuantity": {"value": value, "unit": unit, "system": codes.UCUM_SYSTEM, "code": unit},
        **ctx.links,
    }


def _coded(value: int | None, own: str, standard: str, table: Mapping[int, str]) -> Json | None:
    if value is None:
        return None
    found = [{"system": own, "code": str(value)}]
    if value in table:
        found.append({"system": standard, "code": table[value]})
    return {"coding": found}


def _race(race: str | None) -> Json | None:
    if race is None:
        return None
    if race == "Hispanic":
        part = {
            "url": "ombCategory",
            "valueCoding": {
                "system": codes.CDC_RACE_SYSTEM,
                "code": codes.HISPANIC,
                "display": "Hispanic or Latino",
            },
        }
        return {
            "url": codes.US_CORE_ETHNICITY,
            "extension": [part, {"url": "text", "valueString": "Hispanic or Latino"}],
        }
    code, display = RACE_DISPLAY.get(race, (codes.OTHER_RACE, "Other Race"))
    kind = "ombCategory" if race in RACE_DISPLAY else "detailed"
    part = {
        "url": kind,
        "valueCoding": {"system": codes.CDC_RACE_SYSTEM, "code": code, "display": display},
    }
    return {"url": codes.US_CORE_RACE, "extension": [part, {"url": "text", "valueString": display}]}


def _padded_icd9(code: str) -> str:
    """ICD-9-CM as an EHR writes it: the published data's 8 and 38 are 008 and 038."""
    head, dot, tail = code.partition(".")
    return (head.zfill(3) if head.isdigit() else head) + dot + tail


def _inverse(value: float, conversion: tuple[float, float]) -> float:
    """`value` in the unit that `conversion` (scale, offset) reads from."""
    scale, offset = conversion
    return (value - offset) / scale
