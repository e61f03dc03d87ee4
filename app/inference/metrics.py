"""What answered predictions record in the service's metrics, with bounded flag-reason labels."""

from collections import Counter as Tally
from collections.abc import Sequence
from typing import Final

from app.inference.flags import DECISION_UNCERTAIN, HIGH_UNCERTAINTY
from app.inference.guard import NOVELTY_REASON, OOD_PREFIX
from app.inference.predictor import Prediction
from app.observability.metrics import Metrics

# Flag reasons as counted: per-column out-of-distribution reasons share one label value, so the
# label set stays bounded whatever a request holds.
FLAG_REASON_LABELS: Final = (
    DECISION_UNCERTAIN, HIGH_UNCERTAINTY, NOVELTY_REASON, OOD_PREFIX + "feature",
)  # fmt: skip


def reason_label(reason: str) -> str:
    """Map a flag reason to its bounded metric label."""
    if reason in (DECISION_UNCERTAIN, HIGH_UNCERTAINTY, NOVELTY_REASON):
        return reason
    return OOD_PREFIX + "feature" if reason.startswith(OOD_PREFIX) else "other"


def observe_predictions(metrics: Metrics, predictions: Sequence[Prediction]) -> None:
    """Record the distribution and flag counts of answered predictions, per model version."""
    versions = {p.model_version for p in predictions}
    for version in versions:
        group = (
            predictions
            if len(versions) == 1
            else [p for p in predictions if p.model_version == version]
        )
        flagged = sum(p.flagged for p in group)
        reasons: Tally[str] = Tally()
        if flagged:
            reasons.update(label for p in group for label in {reason_label(r) for r in p.reasons})
        metrics.observe_scores(
            version,
            stds=[p.std for p in group],
            probabilities=[p.probability for p in group],
            # NOTE: as a multiple of the card's threshold, as `NOVELTY_BUCKETS` expects.
            novelty=[
                p.novelty / p.novelty_threshold
                for p in group
                if p.novelty is not None and p.novelty_threshold
            ],
            flagged=flagged,
            total=len(group),
            reasons=reasons,
        )
