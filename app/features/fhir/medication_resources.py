"""Builders of the MedicationRequests that `fhir_from_record` puts in a prefetch."""

from app.features.fhir import codes
from app.features.fhir.resources import Context, Json


def diabetes_orders(ctx: Context, column: str, state: str) -> list[Json]:
    """The orders that give `column` its state: one (Steady), or a prior and a changed dose."""
    if state == "Steady":
        return [_order(ctx, column, "active", 10.0, f"{column}-0")]
    prior = _order(ctx, column, "stopped", 10.0, f"{column}-0")
    current = _order(ctx, column, "active", 20.0 if state == "Up" else 5.0, f"{column}-1", days=1)
    current["priorPrescription"] = {"reference": f"MedicationRequest/{prior['id']}"}
    return [prior, current]


def stopped_order(ctx: Context, column: str) -> Json:
    """A diabetes medication stopped in the stay (a change with no dose Up or Down)."""
    return _order(ctx, column, "stopped", 10.0, f"{column}-stopped")


def other_order(ctx: Context, k: int) -> Json:
    """A placeholder non-diabetes medication: it only counts toward num_medications."""
    return {
        "resourceType": "MedicationRequest",
        "id": f"{ctx.encounter_id}-rx-other-{k}",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": f"other medication {k + 1}"},
        "authoredOn": ctx.at(),
        **ctx.links,
    }


def _order(ctx: Context, column: str, status: str, dose: float, key: str, days: float = 0) -> Json:
    unit = "[iU]" if column == "insulin" else "mg"
    out: Json = {
        "resourceType": "MedicationRequest",
        "id": f"{ctx.encounter_id}-rx-{key}",
        "status": status,
        "intent": "order",
        "authoredOn": ctx.at(days),
        "dosageInstruction": [
            {
                "doseAndRate": [
                    {
                        "doseQuantity": {
                            "value": dose,
                            "unit": unit,
                            "system": codes.UCUM_SYSTEM,
                            "code": unit,
                        }
                    }
                ]
            }
        ],
        **ctx.links,
    }
    parts = column.split("-")
    if len(parts) == 2:  # a combination: a contained Medication names its two ingredients
        out["contained"] = [
            {
                "resourceType": "Medication",
                "id": "med",
                "code": {"text": " / ".join(parts)},
                "ingredient": [{"itemCodeableConcept": _medication_code(p)} for p in parts],
            }
        ]
        out["medicationReference"] = {"reference": "#med"}
    else:
        out["medicationCodeableConcept"] = _medication_code(column)
    return out


def _medication_code(column: str) -> Json:
    rxcui = codes.INGREDIENT_RXCUI.get(column)
    if rxcui is None:  # examide, citoglipton: no RxNorm concept
        return {"coding": [{"system": codes.MEDICATION_SYSTEM, "code": column}], "text": column}
    return {"coding": [{"system": codes.RXNORM_SYSTEM, "code": rxcui, "display": column}]}
