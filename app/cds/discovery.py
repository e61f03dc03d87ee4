"""The CDS Hooks 2.0 discovery document: the services, their hooks and prefetch templates."""

from typing import Any, Final

from app.cds.cards import SERVICE_ID

PATIENT_VIEW_ID: Final = f"{SERVICE_ID}-patient-view"
# One template per key `record_from_prefetch` reads (`app.features.fhir.mapping.PREFETCH_KEYS`).
# NOTE: the encounter's Observations are fetched whole, not filtered by code: one key carries the
# lab count, HbA1c (LOINC 4548-4, 17856-6, 59261-8), glucose (2345-7, 2339-0) and weight
# (29463-7). Prior encounters are not filtered by date: a token can only name the present, and
# the window is the 365 days before this admission, which the mapping applies.
PREFETCH: Final = {
    "patient": "Patient/{{context.patientId}}",
    "encounter": "Encounter/{{context.encounterId}}",
    "conditions": "Condition?encounter={{context.encounterId}}",
    "observations": "Observation?encounter={{context.encounterId}}",
    "medicationRequests": "MedicationRequest?encounter={{context.encounterId}}",
    "procedures": "Procedure?encounter={{context.encounterId}}",
    "priorEncounters": "Encounter?patient={{context.patientId}}",
}
_DESCRIPTION: Final = (
    "Calibrated 30-day readmission risk with its uncertainty range (MC dropout); uncertain"
    " cases are queued for clinician review before the card comes back. Returns a card and a"
    " FHIR R4 RiskAssessment (systemActions)."
)


def discovery() -> dict[str, Any]:
    """The `GET /cds-services` answer."""
    return {
        "services": [
            {
                "hook": "encounter-discharge",
                "id": SERVICE_ID,
                "title": "30-day readmission risk",
                "description": _DESCRIPTION,
                "prefetch": PREFETCH,
            },
            {
                "hook": "patient-view",
                "id": PATIENT_VIEW_ID,
                "title": "30-day readmission risk (chart open)",
                "description": _DESCRIPTION
                + " Needs `context.encounterId`: the encounter to assess.",
                "prefetch": PREFETCH,
            },
        ]
    }
