"""Metrics: ECE bins, Brier, and the vectorised bootstrap interval for AUROC."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.training.metrics import auroc, bootstrap_auroc_ci, brier, ece, reliability


def test_ece_of_a_hand_worked_example() -> None:
    # Bin [0.2, 0.267): mean 0.25, observed 0.5; bin [0.733, 0.8): mean 0.75, observed 1.0.
    p = np.array([0.25, 0.25, 0.75, 0.75])
    y = np.array([0, 1, 1, 1])
    assert ece(y, p) == pytest.approx(0.25)
    _, _, counts = reliability(y, p)
    assert counts.sum() == 4 and (counts > 0).sum() == 2


def test_ece_is_near_zero_when_outcomes_follow_the_probabilities() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 0.5, 200_000)
    y = (rng.random(p.size) < p).astype(int)
    assert ece(y, p) < 0.005
    assert ece(y, np.clip(p + 0.1, 0, 1)) == pytest.approx(0.1, abs=0.01)


def test_brier_of_certain_predictions() -> None:
    y = np.array([0, 1, 1])
    assert brier(y, y.astype(float)) == 0.0
    assert brier(y, np.array([1.0, 0.0, 1.0])) == pytest.approx(2 / 3)


def test_auroc_is_undefined_with_one_class() -> None:
    assert np.isnan(auroc(np.zeros(5), np.linspace(0, 1, 5)))


def test_bootstrap_resamples_score_exactly_like_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(400) < 0.2
    p = np.round(rng.random(400) * 0.5 + 0.2 * y, 2)  # rounding makes ties
    # A near-zero-width interval of 3 resamples is their median; recompute those resamples.
    lo, hi = bootstrap_auroc_ci(y, p, resamples=3, seed=5, level=1e-9)
    picks = np.random.default_rng(5).integers(0, 400, size=(3, 400))
    expected = np.median([roc_auc_score(y[i], p[i]) for i in picks])
    assert lo == pytest.approx(expected) and hi == pytest.approx(expected)


def test_bootstrap_interval_brackets_the_estimate_with_a_plausible_width() -> None:
    rng = np.random.default_rng(2)
    y = rng.random(5000) < 0.1
    p = rng.random(5000) + 0.3 * y
    lo, hi = bootstrap_auroc_ci(y, p, resamples=500, seed=0)
    assert lo < auroc(y, p) < hi
    assert 0.02 < hi - lo < 0.08
