"""CDS Hooks 2.0 cards: the risk, its range and the flag in words a clinician reads."""

from collections.abc import Mapping
from typing import Any, Final

from app.features.fhir.model import Source
from app.inference.prediction import Prediction
from app.web.present import percent, reason

Json = dict[str, Any]
SERVICE_ID: Final = "readmission-risk"
SUMMARY_LIMIT: Final = 140  # CDS Hooks: "<140-character summary"


def source(model_version: str, base_url: str) -> Json:
    """The card's source: the model version, linked to its card."""
    return {"label": f"triage {model_version}", "url": f"{base_url}/models/{model_version}/card"}


def risk_card(
    card_uuid: str,
    prediction: Prediction,
    provenance: Mapping[str, Source],
    review_item_id: int | None,
    base_url: str,
) -> Json:
    """The card of one scored encounter (`warning` when flagged, with a link to its case)."""
    card: Json = {
        "uuid": card_uuid,
        "summary": summary(prediction),
        "indicator": "warning" if prediction.flagged else "info",
        "detail": detail(prediction, provenance),
        "source": source(prediction.model_version, base_url),
    }
    if review_item_id is not None:
        card["links"] = [
            {
                "label": f"Review case {review_item_id}",
                "url": f"{base_url}/review/cases/{review_item_id}",
                "type": "absolute",
            }
        ]
    return card


def not_applicable_card(card_uuid: str, why: str, model_version: str, base_url: str) -> Json:
    """The card of a discharge the model's question does not apply to (death, hospice)."""
    return {
        "uuid": card_uuid,
        "summary": _fit("30-day readmission risk not scored: the question does not apply"),
        "indicator": "info",
        "detail": f"Not scored, nothing stored: {why}.",
        "source": source(model_version, base_url),
    }


def summary(prediction: Prediction) -> str:
    """'30-day readmission risk 12.3% (range 8.1%–14.0%)', and the flag when flagged."""
    text = f"30-day readmission risk {percent(prediction.probability)}"
    if prediction.band_low is not None and prediction.band_high is not None:
        text += f" (range {percent(prediction.band_low)}–{percent(prediction.band_high)})"
    if prediction.flagged:
        text += ": uncertain, flagged for clinician review"
    return _fit(text)


def detail(prediction: Prediction, provenance: Mapping[str, Source]) -> str:
    """The card's markdown: the estimate, why it was flagged, and what the data lacked."""
    lines = [
        f"**Readmission within 30 days:** {percent(prediction.probability)}"
        + _band(prediction)
        + f" (std {prediction.std:.3f}; model {prediction.model_version}).",
    ]
    if prediction.flagged:
        words = "; ".join(reason(r) for r in prediction.reasons)
        lines.append(f"**Flagged for clinician review:** {words}.")
    absent = absent_features(provenance)
    if absent:
        lines.append(
            "**Absent from the FHIR data (read as missing):** "
            + "; ".join(f"{name} ({why})" if why else name for name, why in absent)
            + "."
        )
    return "\n\n".join(lines)


def absent_features(provenance: Mapping[str, Source]) -> list[tuple[str, str]]:
    """The features that had no source, each with why, in column order."""
    return [(name, src.note) for name, src in provenance.items() if src.absent]


def _band(prediction: Prediction) -> str:
    if prediction.band_low is None or prediction.band_high is None:
        return ""
    return (
        f", 5th–95th percentile of the model's passes {percent(prediction.band_low)}"
        f"–{percent(prediction.band_high)}"
    )


def _fit(text: str) -> str:
    """`text` cut to the summary limit (a cut one ends in an ellipsis)."""
    return text if len(text) < SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 2] + "…"
