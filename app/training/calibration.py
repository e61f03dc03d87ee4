"""Fit what the card's calibration and uncertainty sections hold, on the validation split."""

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from app.inference.flags import uncertain

_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    out: np.ndarray = np.log(clipped) - np.log1p(-clipped)
    return out


def fit_platt(probability: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Fit Platt scaling on the logit of MC-mean probabilities: p' = sigmoid(a * logit(p) + b)."""
    if len(np.unique(labels)) < 2:
        raise ValueError("calibration needs both outcomes among the validation labels")
    # NOTE: C is huge so the fit is plain maximum likelihood, not shrunk towards a = 0.
    fit = LogisticRegression(C=1e6, max_iter=1000)
    fit.fit(_logit(probability)[:, None], labels)
    return {
        "method": "platt",
        "a": float(fit.coef_[0, 0]),
        "b": float(fit.intercept_[0]),
        "fitted_on": "validation",
    }


def fit_threshold(std: np.ndarray, review_rate: float) -> dict[str, Any]:
    """Choose the std threshold that flags `review_rate` of the validation encounters."""
    if not 0.0 < review_rate < 1.0:
        raise ValueError(f"review rate must be strictly between 0 and 1, got {review_rate}")
    std = np.asarray(std, dtype=np.float64)
    if std.size == 0:
        raise ValueError("no validation encounters to derive the threshold from")
    threshold = float(np.quantile(std, 1.0 - review_rate))
    return {
        "measure": "std",
        "threshold": threshold,
        "review_rate": review_rate,
        "validation_flag_rate": float(uncertain(std, threshold).mean()),
    }
