"""Turn review items into what a clinician reads: plain words, percentages and chart geometry."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.auth.service import key_label
from app.features.columns import MEDICATION_COLUMNS
from app.features.icd9 import icd9_chapter
from app.review.models import ReviewEvent, ReviewItem
from app.web.words import (
    A1C_WORDS,
    CHAPTER_NAMES,
    FIELD_WORDS,
    NOT_RECORDED,
    OOD_PREFIX,
    OUTCOME_WORDS,
    REASON_WORDS,
    STATUS_WORDS,
)


@dataclass(frozen=True)
class Field:
    """One labelled clinical fact."""

    label: str
    value: str


@dataclass(frozen=True)
class Uncertainty:
    """Geometry of the two charts, in percent of their width (0-100)."""

    low: float | None  # the band's ends in percent; None for a case stored without one
    high: float | None
    point: float
    std_bar: float
    threshold_mark: float
    ratio_label: str


@dataclass(frozen=True)
class EventView:
    """One line of a case's audit trail."""

    at: str
    actor: str
    change: str


@dataclass(frozen=True)
class CaseView:
    """A review item ready for the templates (every string is escaped by the templates)."""

    id: int
    encounter_id: str
    status: str
    status_label: str
    assignee: str | None  # the holder as shown: 'name (key #id)'
    assignee_key_id: int | None
    outcome_label: str | None
    note: str | None
    clinician_risk: str | None  # the resolving clinician's own estimate, '35.0%'
    model_version: str
    probability: str
    interval: str | None  # '21.0%–34.5%', or None when the case has no band
    std: str
    threshold: str
    # The bar under the risk: the decision-flip share against its level, or for a case stored
    # before decisions were kept, the std against its threshold.
    measure_label: str
    measure_value: str
    decision: str | None  # the action threshold and recommended action in words
    n_samples: int
    reasons: list[str]
    chart: Uncertainty
    age_band: str
    summary: list[Field]
    details: list[Field]
    medications_up: list[str]
    medications_down: list[str]
    created_at: str
    created_iso: str


def percent(value: float) -> str:
    """0.2345 -> '23.5%' (one decimal: enough to tell cases apart, not false precision)."""
    return f"{value * 100:.1f}%"


def age_band(value: Any) -> str:
    """'[70-80)' -> '70–79 years'."""
    if not isinstance(value, str) or not value.startswith("[") or "-" not in value:
        return NOT_RECORDED
    low, high = value.strip("[)").split("-", 1)
    if not (low.isdigit() and high.isdigit()):
        return NOT_RECORDED
    return f"{int(low)}–{int(high) - 1} years"


def days(value: Any) -> str:
    """3 -> '3 days', 1 -> '1 day'."""
    if not isinstance(value, int) or isinstance(value, bool):
        return NOT_RECORDED
    return f"{value} day" if value == 1 else f"{value} days"


def count(value: Any, noun: str) -> str:
    """2, 'visit' -> '2 visits'; 0 -> 'None'."""
    if not isinstance(value, int) or isinstance(value, bool):
        return NOT_RECORDED
    if value == 0:
        return "None"
    return f"{value} {noun}" if value == 1 else f"{value} {noun}s"


def diagnosis(code: Any) -> str:
    """'428' -> 'Circulatory system (ICD-9 428)'."""
    if not isinstance(code, str) or not code:
        return NOT_RECORDED
    chapter = icd9_chapter(code)
    name = CHAPTER_NAMES.get(chapter, "Unrecognised code") if chapter else "Unrecognised code"
    return f"{name} (ICD-9 {code})"


def a1c(value: Any) -> str:
    """The A1C result in words."""
    return A1C_WORDS.get(value, NOT_RECORDED) if isinstance(value, str) else NOT_RECORDED


def medication_change(value: Any) -> str:
    """The `change` column in words."""
    return {"Ch": "Changed", "No": "No change"}.get(str(value), NOT_RECORDED)


def medications(encounter: Mapping[str, Any], direction: str) -> list[str]:
    """Medications whose dose went `direction` ('Up' or 'Down')."""
    return [name for name in MEDICATION_COLUMNS if encounter.get(name) == direction]


def reason(code: str) -> str:
    """A flag reason in words: 'out_of_distribution:diag_1' -> 'Unusual primary diagnosis'."""
    if code in REASON_WORDS:
        return REASON_WORDS[code]
    if code.startswith(OOD_PREFIX):
        field = code.removeprefix(OOD_PREFIX)
        return f"Unusual {FIELD_WORDS.get(field, field.replace('_', ' '))}"
    return code.replace("_", " ").capitalize()


def uncertainty(
    probability: float,
    std: float,
    threshold: float,
    band: tuple[float | None, float | None] = (None, None),
) -> Uncertainty:
    """Chart geometry: the calibrated risk and its 5th-95th percentile band over the dropout
    passes on 0-100%, and the std on a scale that shows the threshold.

    The band comes from the calibrated passes themselves: the std is on the uncalibrated scale,
    so a band built from it around the calibrated risk would be on the wrong scale. The std
    scale runs to twice the threshold (or a bit past the std when that is larger), so the
    threshold mark sits mid-bar and "how far over" reads at a glance.
    """
    low, high = band
    scale = max(2 * threshold, std * 1.1, 1e-9)
    return Uncertainty(
        low=None if low is None else round(low * 100, 2),
        high=None if high is None else round(high * 100, 2),
        point=round(probability * 100, 2),
        std_bar=round(min(std / scale, 1.0) * 100, 2),
        threshold_mark=round(threshold / scale * 100, 2),
        ratio_label=f"{std / threshold:.1f}× threshold" if threshold > 0 else "above threshold",
    )


def when(moment: datetime) -> str:
    """A timestamp as '2026-11-27 14:03 UTC'."""
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def case_view(item: ReviewItem) -> CaseView:
    """Present one review item."""
    e = item.encounter
    band = (item.band_low, item.band_high)
    flip = item.decision_flip_probability
    if flip is None:
        chart = uncertainty(item.probability, item.std, item.threshold, band)
        measure_label, measure_value = "Uncertainty SD", f"{item.std:.3f}"
    else:
        chart = uncertainty(item.probability, flip, item.threshold, band)
        measure_label, measure_value = "Passes on the other side of the threshold", percent(flip)
    reasons = [reason(r) for r in item.reasons]
    summary = [
        Field("Age", age_band(e.get("age"))),
        Field("Length of stay", days(e.get("time_in_hospital"))),
        Field("Prior inpatient visits", count(e.get("number_inpatient"), "visit")),
        Field("Prior emergency visits", count(e.get("number_emergency"), "visit")),
        Field("Primary diagnosis", diagnosis(e.get("diag_1"))),
        Field("A1C result", a1c(e.get("A1Cresult"))),
        Field("Diabetes medication changed", medication_change(e.get("change"))),
    ]
    details = [
        Field("Prior outpatient visits", count(e.get("number_outpatient"), "visit")),
        Field("Secondary diagnosis", diagnosis(e.get("diag_2"))),
        Field("Additional diagnosis", diagnosis(e.get("diag_3"))),
        Field("Number of diagnoses", _plain(e.get("number_diagnoses"))),
        Field("Medications during stay", _plain(e.get("num_medications"))),
        Field("Lab procedures", _plain(e.get("num_lab_procedures"))),
        Field("Procedures", _plain(e.get("num_procedures"))),
        Field("On diabetes medication", _plain(e.get("diabetesMed"))),
        Field("Admitting specialty", _plain(e.get("medical_specialty"))),
        Field("Sex", _plain(e.get("gender"))),
    ]
    return CaseView(
        id=item.id,
        encounter_id=item.encounter_id,
        status=item.status,
        status_label=STATUS_WORDS.get(item.status, item.status),
        assignee=key_label(item.assignee, item.assignee_key_id) if item.assignee else None,
        assignee_key_id=item.assignee_key_id,
        outcome_label=OUTCOME_WORDS.get(item.outcome) if item.outcome else None,
        note=item.note,
        clinician_risk=None if item.clinician_risk is None else percent(item.clinician_risk),
        model_version=item.model_version,
        probability=percent(item.probability),
        interval=_band_words(item.band_low, item.band_high),
        std=f"{item.std:.3f}",
        threshold=f"{item.threshold:.3f}" if flip is None else percent(item.threshold),
        measure_label=measure_label,
        measure_value=measure_value,
        decision=decision_words(item.probability, item.action_threshold, flip),
        n_samples=item.n_samples,
        reasons=reasons,
        chart=chart,
        age_band=age_band(e.get("age")),
        summary=summary,
        details=details,
        medications_up=medications(e, "Up"),
        medications_down=medications(e, "Down"),
        created_at=when(item.created_at),
        created_iso=item.created_at.isoformat(),
    )


def event_view(event: ReviewEvent) -> EventView:
    """Present one audit event: 'Claimed', 'Released', 'Resolved: Needs follow-up', ..."""
    detail = event.detail or {}
    if "ehr_feedback" in detail:
        change = ehr_feedback_words(detail)
    elif event.from_status is None:
        change = "Flagged and queued"
    elif event.from_status == event.to_status == "in_review":
        change = f"Reassigned from {detail.get('from', 'its holder')} to {detail.get('to', '?')}"
    elif event.to_status == "in_review":
        change = "Claimed"
    elif (event.from_status, event.to_status) == ("in_review", "pending"):
        change = "Released"
    elif event.to_status == "superseded":
        newer = detail.get("item_id")
        change = f"Superseded by case {newer}" if newer else "Superseded by an unflagged version"
    elif event.to_status == "resolved":
        outcome = detail.get("outcome")
        change = f"Resolved: {OUTCOME_WORDS[outcome]}" if outcome in OUTCOME_WORDS else "Resolved"
        risk = detail.get("clinician_risk")
        if isinstance(risk, int | float) and not isinstance(risk, bool):
            change += f" · clinician's risk estimate {percent(risk)}"
    else:
        change = f"{STATUS_WORDS.get(event.from_status, event.from_status)} → " + STATUS_WORDS.get(
            event.to_status, event.to_status
        )
    actor = key_label(event.actor, event.actor_key_id)
    return EventView(at=when(event.at), actor=actor, change=change)


def ehr_feedback_words(detail: Mapping[str, Any]) -> str:
    """'EHR feedback: overridden (Patient declined)': the clinician's word on the EHR card."""
    words = f"EHR feedback: {detail['ehr_feedback']}"
    why = detail.get("override_reason") or {}
    coding = why.get("reason") or {}
    said = [str(s) for s in (coding.get("display") or coding.get("code"), why.get("userComment"))]
    said = [s for s in said if s and s != "None"]
    return f"{words} ({'; '.join(said)})" if said else words


def decision_words(
    probability: float, action_threshold: float | None, flip: float | None
) -> str | None:
    """The action threshold, the action the risk recommends and how likely it flips, in words."""
    if action_threshold is None:
        return None
    side = "at or above" if probability >= action_threshold else "below"
    action = "act (e.g. enrol)" if probability >= action_threshold else "do not act"
    words = f"Risk {side} the action threshold of {percent(action_threshold)}: {action}."
    if flip is not None:
        words += f" {percent(flip)} of the model's passes put the risk on the other side" + (
            ", so this decision could go either way." if flip >= 0.25 else "."
        )
    return words


def _band_words(low: float | None, high: float | None) -> str | None:
    return None if low is None or high is None else f"{percent(low)}–{percent(high)}"


def _plain(value: Any) -> str:
    if value is None or value == "":
        return NOT_RECORDED
    return str(value)
