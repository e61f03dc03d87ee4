"""Platt scaling fitted on validation and the std threshold for a target review rate."""

import numpy as np
import pytest

from app.inference.calibration import calibrate
from app.inference.flags import uncertain
from app.training.calibration import fit_platt, fit_threshold
from app.training.metrics import ece


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores whose true probability is sigmoid(0.6 * logit(p) - 0.4)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(-2.0, 1.2, n)))
    logit = np.log(p / (1 - p))
    truth = 1 / (1 + np.exp(-(0.6 * logit - 0.4)))
    return p, (rng.random(n) < truth).astype(int)


def test_platt_recovers_the_distortion_and_fixes_calibration() -> None:
    p, y = _overconfident(100_000, seed=0)
    card = fit_platt(p, y)
    assert card["method"] == "platt" and card["fitted_on"] == "validation"
    assert card["a"] == pytest.approx(0.6, abs=0.03)
    assert card["b"] == pytest.approx(-0.4, abs=0.05)
    p_test, y_test = _overconfident(50_000, seed=1)
    assert ece(y_test, p_test) > 0.03
    assert ece(y_test, calibrate(p_test, card)) < 0.01


def test_platt_needs_both_outcomes() -> None:
    with pytest.raises(ValueError, match="both outcomes"):
        fit_platt(np.array([0.1, 0.2]), np.array([0, 0]))


def test_threshold_flags_the_target_share() -> None:
    std = np.random.default_rng(0).gamma(2.0, 0.01, 20_000)
    for rate in (0.05, 0.10, 0.25):
        section = fit_threshold(std, rate)
        assert section["measure"] == "std" and section["review_rate"] == rate
        assert section["validation_flag_rate"] == pytest.approx(rate, abs=0.001)
        assert uncertain(std, section["threshold"]).mean() == pytest.approx(rate, abs=0.001)


def test_a_lower_review_rate_raises_the_threshold() -> None:
    std = np.random.default_rng(0).gamma(2.0, 0.01, 5000)
    assert fit_threshold(std, 0.05)["threshold"] > fit_threshold(std, 0.10)["threshold"]


@pytest.mark.parametrize("rate", [0.0, 1.0, -0.1, 1.5])
def test_review_rate_must_be_a_proper_share(rate: float) -> None:
    with pytest.raises(ValueError, match="review rate"):
        fit_threshold(np.array([0.1, 0.2]), rate)
