"""Decision-aware referral: net benefit, the risk-matched baseline and the pass summaries."""

import numpy as np
import pytest

from app.inference.calibration import calibrate
from app.training.decision import (
    PairedBootstrap,
    choose_action_threshold,
    evaluate_referral,
    matched_keep,
    net_benefit,
    pass_scores,
)


def test_net_benefit_weighs_a_needless_action_by_the_odds_of_the_threshold() -> None:
    y = np.array([1, 0, 1, 0])
    p = np.array([0.9, 0.8, 0.1, 0.05])
    assert net_benefit(y, p, 0.5) == pytest.approx((1 - 1) / 4)
    assert net_benefit(y, p, 0.2) == pytest.approx((1 - 0.25) / 4)
    assert net_benefit(y, p, 0.95) == 0.0  # acts on no one


def test_risk_matched_random_refers_as_many_from_each_risk_bin() -> None:
    p = np.linspace(0.01, 0.99, 100)
    referred = np.zeros(100, dtype=bool)
    referred[:5] = True  # half of the lowest of ten bins
    keep = matched_keep(p, referred, bins=10)
    assert keep[:10] == pytest.approx(np.full(10, 0.5)) and (keep[10:] == 1).all()
    assert (1 - keep).sum() == pytest.approx(referred.sum())


def test_a_referral_of_exactly_the_wrong_decisions() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.4, 400)
    y = (rng.uniform(size=400) < p).astype(float)
    wrong = (p >= 0.2) != (y == 1)
    boot = PairedBootstrap(400, resamples=200, seed=1)
    row = evaluate_referral(y, p, wrong, wrong, 0.2, boot, seed=1)
    assert row["referred_wrong_share"] == 1.0 and row["retained_decision_accuracy"] == 1.0
    assert row["retained_net_benefit"] > net_benefit(y, p, 0.2)
    lo, hi = row["net_benefit_minus_matched_random_ci"]
    assert 0 < lo <= row["net_benefit_minus_matched_random"] <= hi  # beats chance in each bin
    assert row["net_benefit_minus_closeness"] == 0.0  # compared with itself


def test_the_flip_share_is_the_calibrated_passes_on_the_other_side() -> None:
    logits = np.array([[-2.0, -1.0, 0.5, 1.0], [-3.0, -2.5, -2.0, -1.5]], dtype=np.float32)
    calibration = {"method": "platt", "a": 0.8, "b": -0.2}
    scores = pass_scores(logits, calibration, 0.3)
    passes = calibrate(1 / (1 + np.exp(-logits.astype(np.float64))), calibration)
    for k in range(2):
        acting = scores.probability[k] >= 0.3
        other = (passes[k] < 0.3) if acting else (passes[k] >= 0.3)
        assert scores.decision_flip[k] == other.mean()
    assert scores.decision_flip[1] == 0.0 and scores.logit_std[1] == pytest.approx(
        np.std([-3.0, -2.5, -2.0, -1.5], ddof=1)
    )


def test_the_default_threshold_is_where_the_model_adds_most_over_treat_all_or_none() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(2, 14, 20_000)
    y = (rng.uniform(size=p.size) < p).astype(float)
    chosen = choose_action_threshold(y, p)
    assert abs(chosen["threshold"] - y.mean()) <= 0.03  # near the prevalence for a calibrated p
    best = max(chosen["curve"], key=lambda r: r["added"])
    assert best["threshold"] == chosen["threshold"] and best["added"] > 0


def test_a_decreasing_calibration_counts_the_passes_below_the_cut() -> None:
    logits = np.array([[-2.0, -1.0, 0.5, 1.0, 2.0]], dtype=np.float32)
    calibration = {"method": "platt", "a": -0.5, "b": 0.0}
    scores = pass_scores(logits, calibration, 0.45)
    passes = calibrate(1 / (1 + np.exp(-logits.astype(np.float64))), calibration)[0]
    acting = scores.probability[0] >= 0.45
    other = (passes < 0.45) if acting else (passes >= 0.45)
    assert scores.decision_flip[0] == other.mean() and 0 < other.mean() < 1
