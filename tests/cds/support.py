"""What the CDS tests share: a data row as a hook request, and FHIR/CDS Hooks validation."""

from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from app.features.fhir.example import fhir_from_record

HOOK_URL = "/cds-services/readmission-risk"


def hook_request(row: dict[str, Any]) -> dict[str, Any]:
    """The converter's CDS Hooks request for one published row."""
    return fhir_from_record(row)


def check_card(card: dict[str, Any]) -> None:
    """Every field CDS Hooks 2.0 requires of a card, within its limits."""
    assert isinstance(card["uuid"], str) and card["uuid"]
    assert isinstance(card["summary"], str) and 0 < len(card["summary"]) < 140
    assert card["indicator"] in ("info", "warning", "critical")
    assert isinstance(card["source"]["label"], str) and card["source"]["label"]


def check_answer(answer: dict[str, Any]) -> RiskAssessment | None:
    """Validate the cards and the RiskAssessment of a hook answer; return the assessment."""
    assert answer["cards"], answer
    for card in answer["cards"]:
        check_card(card)
    actions = answer.get("systemActions") or []
    if not actions:
        return None
    [action] = actions
    assert action["type"] == "create" and action["description"]
    return RiskAssessment.model_validate(action["resource"])


def check_bundle(bundle: dict[str, Any]) -> Bundle:
    """A searchset Bundle valid in R4B."""
    assert bundle["type"] == "searchset"
    return Bundle.model_validate(bundle)
