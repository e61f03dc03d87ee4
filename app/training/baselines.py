"""Baselines on the same split and encoding: logistic regression and gradient boosting."""

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

_EPS = 1e-7


def logistic_regression(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, seed: int) -> np.ndarray:
    """Fit an L2 logistic regression on the training rows; return test probabilities."""
    model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
    model.fit(x, y)
    out: np.ndarray = model.predict_proba(x_test)[:, 1]
    return out


def gradient_boosting(
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    x_test: np.ndarray,
    seed: int,
    *,
    max_iter: int = 300,
) -> tuple[np.ndarray, int]:
    """Fit gradient boosting; return test probabilities at the best validation stage and it."""
    model = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=max_iter,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=False,
        random_state=seed,
    )
    model.fit(x, y)
    # NOTE: the stage is chosen on our patient-level validation split (where the MLP stops too),
    # not on sklearn's random row slice of train, which would leak patients.
    losses = [_log_loss(y_val, p[:, 1]) for p in model.staged_predict_proba(x_val)]
    best = int(np.argmin(losses))
    for stage, p in enumerate(model.staged_predict_proba(x_test)):
        if stage == best:
            out: np.ndarray = p[:, 1]
            return out, best + 1
    raise RuntimeError("gradient boosting produced no stages")  # pragma: no cover


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(p, _EPS, 1.0 - _EPS)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log1p(-q)))
