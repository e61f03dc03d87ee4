"""A scored encounter as a FHIR R4 RiskAssessment: what the EHR files in the chart."""

import uuid
from datetime import datetime
from typing import Any, Final

import msgspec

from app.features.fhir.schema import Bundle, Prefetch, Resource
from app.inference.prediction import Prediction
from app.web.present import reason

Json = dict[str, Any]
OUTCOME: Final = "readmission within 30 days"
MODEL_SYSTEM: Final = "urn:triage:model"
RISK_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/risk-probability"
_PROFILE: Final = "https://triage.example/fhir/StructureDefinition/"
BAND_EXTENSION: Final = _PROFILE + "probability-band"
STD_EXTENSION: Final = _PROFILE + "dropout-std"
REASON_EXTENSION: Final = _PROFILE + "flag-reason"
# Cut-offs of `qualitativeRisk` on the calibrated probability; the data's base rate is about 11%.
MODERATE_FROM: Final = 0.10
HIGH_FROM: Final = 0.20
_NAMESPACE: Final = uuid.UUID("3b0c5e55-8f0e-4d2b-9b1a-5f6d7c8e9a01")


def assessment_id(encounter_id: str, model_version: str, content_hash: str) -> str:
    """The RiskAssessment's id (and its card's uuid): the same for the same content and model,
    so a retried hook names the same assessment."""
    return str(uuid.uuid5(_NAMESPACE, f"{encounter_id}\n{model_version}\n{content_hash}"))


def qualitative_risk(probability: float) -> str:
    """`low` below 10%, `moderate` below 20%, else `high` (codes of risk-probability)."""
    if probability < MODERATE_FROM:
        return "low"
    return "moderate" if probability < HIGH_FROM else "high"


def risk_assessment(
    resource_id: str,
    prefetch: Prefetch,
    prediction: Prediction,
    at: datetime,
) -> Json:
    """The RiskAssessment of one prediction, its basis the prefetched resources it was made from."""
    assert prefetch.patient is not None and prefetch.encounter is not None  # both were mapped
    version = prediction.model_version
    risk = qualitative_risk(prediction.probability)
    forecast: Json = {
        "outcome": {"text": OUTCOME},
        "probabilityDecimal": prediction.probability,
        "qualitativeRisk": {"coding": [{"system": RISK_SYSTEM, "code": risk}]},
    }
    # NOTE: R4 allows one of probabilityDecimal and probabilityRange; the band rides along as
    # an extension holding a Range (and in words in the rationale), with the std and the flag
    # reasons exactly as /predict answers them.
    extensions: list[Json] = [{"url": STD_EXTENSION, "valueDecimal": prediction.std}]
    extensions += [{"url": REASON_EXTENSION, "valueCode": r} for r in prediction.reasons]
    if prediction.band_low is not None and prediction.band_high is not None:
        low, high = {"value": prediction.band_low}, {"value": prediction.band_high}
        extensions.append({"url": BAND_EXTENSION, "valueRange": {"low": low, "high": high}})
        forecast["rationale"] = (
            f"5th-95th percentile of the dropout passes: {prediction.band_low:.4f}"
            f"-{prediction.band_high:.4f}"
        )
    forecast["extension"] = extensions
    return {
        "resourceType": "RiskAssessment",
        "id": resource_id,
        "status": "final",
        "subject": {"reference": f"Patient/{prefetch.patient.id}"},
        "encounter": {"reference": f"Encounter/{prefetch.encounter.id}"},
        "occurrenceDateTime": at.isoformat().replace("+00:00", "Z"),
        "method": {
            "coding": [
                {
                    "system": MODEL_SYSTEM,
                    "code": "readmission-risk",
                    "version": version,
                    "display": f"triage {version}",
                }
            ],
            "text": f"triage readmission-risk model {version} (MC-dropout, calibrated)",
        },
        "basis": _basis(prefetch),
        "prediction": [forecast],
        "note": [{"text": note(prediction)}],
    }


def note(prediction: Prediction) -> str:
    """The uncertainty and the flag in words, for the chart."""
    text = (
        f"std of the dropout passes {prediction.std:.4f} (review threshold"
        f" {prediction.threshold:.4f}, {prediction.n_samples} passes, seed {prediction.seed})."
    )
    if prediction.flagged:
        words = "; ".join(reason(r) for r in prediction.reasons)
        text += f" Flagged for clinician review: {words}."
    return text


def _basis(prefetch: Prefetch) -> list[Json]:
    """References to every prefetched resource that has an id."""
    resources: list[Resource | None] = [prefetch.patient, prefetch.encounter]
    for value in msgspec.structs.astuple(prefetch)[2:]:
        if isinstance(value, Bundle):
            resources += value.resources()
    # NOTE: the prior encounters may include the encounter itself; each resource once.
    names = dict.fromkeys(
        f"{r.resourceType}/{r.id}" for r in resources if r is not None and r.resourceType and r.id
    )
    return [{"reference": name} for name in names]
