"""Presenting review items: plain words for the encounter, geometry for the uncertainty charts."""

from datetime import UTC, datetime

import pytest

from app.review.models import ReviewEvent, ReviewItem
from app.web.present import (
    NOT_RECORDED,
    a1c,
    age_band,
    case_view,
    count,
    days,
    decision_words,
    diagnosis,
    event_view,
    reason,
    uncertainty,
)


def item(band: tuple[float | None, float | None] = (0.18, 0.33), **encounter: object) -> ReviewItem:
    """A review item around `encounter`, with the calibrated band of its passes."""
    return ReviewItem(
        id=5,
        encounter_id="E-1",
        model_version="2026.11.1",
        encounter=dict(encounter),
        probability=0.25,
        std=0.06,
        band_low=band[0],
        band_high=band[1],
        reasons=["high_uncertainty"],
        threshold=0.04,
        n_samples=256,
        seed=7,
        status="in_review",
        assignee="Dr Ada",
        created_at=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("[70-80)", "70–79 years"),
        ("[0-10)", "0–9 years"),
        (None, NOT_RECORDED),
        ("old", NOT_RECORDED),
    ],
)
def test_age_band(value: object, words: str) -> None:
    assert age_band(value) == words


def test_counts_and_days() -> None:
    assert days(1) == "1 day" and days(5) == "5 days" and days(None) == NOT_RECORDED
    assert count(0, "visit") == "None" and count(1, "visit") == "1 visit"
    assert count(3, "visit") == "3 visits" and count(True, "visit") == NOT_RECORDED


def test_diagnosis_groups_are_readable() -> None:
    assert diagnosis("250.83") == "Diabetes mellitus (ICD-9 250.83)"
    assert diagnosis("428") == "Circulatory system (ICD-9 428)"
    assert diagnosis("V45") == "Supplementary factors (V codes) (ICD-9 V45)"
    assert diagnosis(None) == NOT_RECORDED
    assert diagnosis("XYZ") == "Unrecognised code (ICD-9 XYZ)"


def test_a1c_in_words() -> None:
    assert a1c(">8") == "Above 8%" and a1c("Norm").startswith("Normal")
    assert a1c("None") == "Not measured" and a1c(None) == NOT_RECORDED


def test_the_band_is_the_calibrated_passes_not_the_risk_plus_two_std() -> None:
    # A calibrated risk of 5% with std 0.04: +-2 std would read 0-13%; the passes say 3-9%.
    chart = uncertainty(0.05, 0.04, 0.04, (0.031, 0.089))
    assert (chart.low, chart.point, chart.high) == (3.1, 5.0, 8.9)
    assert chart.threshold_mark == pytest.approx(50.0) and chart.std_bar == pytest.approx(50.0)
    assert chart.ratio_label == "1.0× threshold"
    far = uncertainty(0.99, 0.2, 0.04)
    assert far.low is None and far.high is None  # a case stored without a band shows none
    assert far.std_bar == pytest.approx(100 / 1.1, abs=0.01)
    assert 0 < far.threshold_mark < 50  # the scale grows past a large std
    assert uncertainty(0.5, 0.1, 0.0).ratio_label == "above threshold"


def test_case_view_summarises_the_encounter() -> None:
    view = case_view(
        item(
            age="[60-70)",
            time_in_hospital=4,
            number_inpatient=2,
            number_emergency=0,
            diag_1="428",
            A1Cresult=">7",
            change="Ch",
            insulin="Up",
            metformin="Down",
            glipizide="Steady",
        )
    )
    summary = {f.label: f.value for f in view.summary}
    assert summary["Age"] == "60–69 years"
    assert summary["Length of stay"] == "4 days"
    assert summary["Prior inpatient visits"] == "2 visits"
    assert summary["Prior emergency visits"] == "None"
    assert summary["Primary diagnosis"].startswith("Circulatory system")
    assert summary["A1C result"] == "7–8%"
    assert summary["Diabetes medication changed"] == "Changed"
    assert view.medications_up == ["insulin"] and view.medications_down == ["metformin"]
    assert view.probability == "25.0%" and view.interval == "18.0%–33.0%"
    assert view.reasons == ["High uncertainty"] and view.status_label == "In review"
    assert view.created_at == "2026-11-27 09:30 UTC"


def test_missing_fields_read_not_recorded() -> None:
    view = case_view(item())
    assert {f.value for f in view.summary} == {NOT_RECORDED}
    assert case_view(item(band=(None, None))).interval is None
    assert view.medications_up == view.medications_down == []


def test_event_view() -> None:
    at = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    queued = ReviewEvent(from_status=None, to_status="pending", actor="ehr", at=at)
    done = ReviewEvent(
        from_status="in_review", to_status="resolved", actor="Dr Ada", at=at,
        detail={"outcome": "needs_follow_up"},
    )  # fmt: skip
    assert event_view(queued).change == "Flagged and queued"
    assert event_view(done).change == "Resolved: Needs follow-up"


def test_reasons_in_words() -> None:
    assert reason("high_uncertainty") == "High uncertainty"
    assert reason("out_of_distribution:novelty") == "Unlike the training data"
    assert reason("out_of_distribution:time_in_hospital") == "Unusual length of stay"
    assert reason("out_of_distribution:A1Cresult") == "Unusual A1Cresult"
    assert reason("something_new") == "Something new"


def test_a_decision_case_shows_the_threshold_the_action_and_the_flip_share() -> None:
    case = item()
    case.reasons = ["decision_uncertain"]
    case.threshold, case.action_threshold, case.decision_flip_probability = 0.36, 0.2, 0.42
    view = case_view(case)
    assert view.decision == (
        "Risk at or above the action threshold of 20.0%: act (e.g. enrol). 42.0% of the model's"
        " passes put the risk on the other side, so this decision could go either way."
    )
    assert (view.measure_value, view.threshold) == ("42.0%", "36.0%")
    assert view.reasons == ["Decision could flip"]
    assert decision_words(0.1, 0.2, 0.01) == (
        "Risk below the action threshold of 20.0%: do not act. 1.0% of the model's passes put"
        " the risk on the other side."
    )
    # A case stored before decisions were kept shows the std as it was flagged.
    old = case_view(item())
    assert old.decision is None and old.measure_label == "Uncertainty SD"
