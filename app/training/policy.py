"""The referral policy, fitted on the validation split: the domain guard, its novelty
threshold and the std threshold (or the decision-flip level) that together flag the review rate
(serving only applies them: `app.inference.guard`, `app.inference.flags`)."""

from typing import Any, Final

import numpy as np
import torch
from sklearn.covariance import LedoitWolf
from torch import nn

from app.features.columns import COUNT_COLUMNS
from app.features.encoder import Columns
from app.inference.activations import hidden_features
from app.inference.engine import MCDropoutEngine
from app.inference.flags import DECISION_MEASURE, DECISION_UNCERTAIN, flagged, uncertain
from app.inference.guard import (
    CATEGORY_COLUMNS,
    DomainGuard,
    GuardResult,
    as_float,
    category_slot,
)
from app.training.decision import PassScores
from app.training.referral import mc_scores

NOVELTY_SHARE: Final = 0.2


def fit_guard(
    model: nn.Module,
    train_columns: Columns,
    x_train: np.ndarray,
    x_validation: np.ndarray,
    *,
    novelty_rate: float = 0.02,
) -> DomainGuard:
    """Fit ranges, vocabularies and the covariance on training; the threshold on validation."""
    if not 0.0 < novelty_rate < 1.0:
        raise ValueError(f"novelty rate must be strictly between 0 and 1, got {novelty_rate}")
    ranges: dict[str, tuple[float, float, bool]] = {}
    for name in COUNT_COLUMNS:
        values = as_float(train_columns[name])
        present = values[~np.isnan(values)]
        if present.size == 0:
            raise ValueError(f"column {name!r} has no values to fit the guard on")
        ranges[name] = (
            float(present.min()),
            float(present.max()),
            bool(np.isnan(values).any()),
        )
    observed = {
        name: sorted({category_slot(name, v) for v in train_columns[name]})
        for name in CATEGORY_COLUMNS
    }
    h = hidden_features(model, x_train)
    lw = LedoitWolf(assume_centered=False).fit(h)
    guard = DomainGuard(
        ranges=ranges,
        observed=observed,
        mean=lw.location_,
        precision=lw.precision_,
        threshold=np.inf,
        quantile=1.0 - novelty_rate,
        model=model,
    )
    scores = guard.novelty(x_validation)
    return guard.with_threshold(float(np.quantile(scores, 1.0 - novelty_rate)))


def fit_policy(
    model: torch.nn.Module,
    train_columns: Columns,
    x_train: np.ndarray,
    validation_columns: Columns,
    x_validation: np.ndarray,
    *,
    review_rate: float,
    n_samples: int,
    seed: int,
    novelty_share: float = NOVELTY_SHARE,
    validation_std: np.ndarray | None = None,
) -> tuple[DomainGuard, dict[str, Any]]:
    """Fit the guard and the std threshold so the combined flag rate on validation is the budget.

    The novelty score gets `novelty_share` of the review rate (its threshold is that quantile
    of the validation scores); per-feature reasons take what they take; the std threshold is
    then chosen among the rest so that std OR guard flags exactly `review_rate` of validation.
    """
    guard = fit_guard(
        model, train_columns, x_train, x_validation, novelty_rate=review_rate * novelty_share
    )
    std = validation_std
    if std is None:
        engine = MCDropoutEngine(model, device="cpu", default_seed=seed)
        _, std, _ = mc_scores(engine, x_validation, n_samples=n_samples, seed=seed)
    return fit_thresholds(
        guard, std, validation_columns, x_validation,
        review_rate=review_rate, novelty_share=novelty_share,
    )  # fmt: skip


def fit_thresholds(
    guard: DomainGuard,
    validation_std: np.ndarray,
    validation_columns: Columns,
    x_validation: np.ndarray,
    *,
    review_rate: float,
    novelty_share: float | None = NOVELTY_SHARE,
) -> tuple[DomainGuard, dict[str, Any]]:
    """Derive the std threshold (and the novelty one, unless `novelty_share` is None) for a rate.

    With `novelty_share` None the guard is kept exactly as fitted and only the std threshold
    moves (`triage calibrate`); the guard's own validation share then comes off the budget.
    """
    if novelty_share is not None:
        quantile = 1.0 - review_rate * novelty_share
        novelty = guard.novelty(x_validation)
        guard = guard.with_threshold(float(np.quantile(novelty, quantile)), quantile)
    checked = guard.check_columns(validation_columns, x_validation)
    std = np.asarray(validation_std, dtype=np.float64)
    threshold = fit_std_threshold(std, checked.flagged, review_rate)
    uncertainty = {
        "measure": "std",
        "threshold": threshold,
        "review_rate": review_rate,
        "validation_flag_rate": float(flagged(std, threshold, checked).mean()),
        "policy": "flag when std > threshold or the domain guard gives any reason",
        "validation_rates": rates(std, threshold, checked),
    }
    return guard, uncertainty


def rates(std: np.ndarray, threshold: float, guard: GuardResult) -> dict[str, float]:
    """Share of encounters flagged in all and by each reason (a case can have several)."""
    high = uncertain(std, threshold)
    return {
        "flagged": float(flagged(std, threshold, guard).mean()),
        "high_uncertainty": float(high.mean()),
        "out_of_distribution:novelty": float(guard.novel.mean()),
        "out_of_distribution:feature": float(guard.any_feature.mean()),
    }


def fit_std_threshold(std: np.ndarray, guard_flagged: np.ndarray, review_rate: float) -> float:
    """The level of a measure (the std, or the decision-flip share) that makes the combined
    flag rate on validation equal `review_rate`, as near as ties allow.

    The guard's flags are spent first; the std flag gets the rest of the budget, chosen among
    the encounters the guard left unflagged.
    """
    if not 0.0 < review_rate < 1.0:
        raise ValueError(f"review rate must be strictly between 0 and 1, got {review_rate}")
    std = np.asarray(std, dtype=np.float64)
    guard_flagged = np.asarray(guard_flagged, dtype=bool)
    left = review_rate * len(std) - guard_flagged.sum()
    if left <= 0:
        raise ValueError(
            f"the domain guard alone flags {guard_flagged.mean():.3f} of validation encounters, "
            f"more than the review rate {review_rate}; lower the guard's novelty share"
        )
    rest = std[~guard_flagged]
    level = float(np.quantile(rest, 1.0 - left / len(rest)))
    # NOTE: a discrete measure (the decision-flip share is k / N) ties at the quantile, and the
    # rule flags strictly above it; the next lower value takes the ties in, whichever is nearer.
    below = rest[rest < level]
    if below.size and abs((rest >= level).sum() - left) < abs((rest > level).sum() - left):
        level = float(below.max())
    return level


def fit_decision(
    scores: PassScores,
    guard: GuardResult,
    *,
    review_rate: float,
    action_threshold: float,
    threshold_rule: str,
    measure: str = DECISION_MEASURE,
) -> dict[str, Any]:
    """The card's `decision` block: the action threshold and the level of the measure that,
    with the guard's flags spent first, flags `review_rate` of validation."""
    score = scores.measure(measure)
    level = fit_std_threshold(score, guard.flagged, review_rate)
    return {
        "action_threshold": action_threshold,
        "threshold_rule": threshold_rule,
        "measure": measure,
        "level": level,
        "review_rate": review_rate,
        "validation_flag_rate": float(flagged(score, level, guard).mean()),
        "validation_rates": decision_rates(score, level, guard),
        "policy": f"flag when {measure} is above the level or the domain guard gives any reason",
        "fitted_on": "validation",
    }


def decision_rates(flip: np.ndarray, level: float, guard: GuardResult) -> dict[str, float]:
    """Share of encounters the decision rule flags in all and by each reason."""
    return {
        "flagged": float(flagged(flip, level, guard).mean()),
        DECISION_UNCERTAIN: float(uncertain(flip, level).mean()),
        "out_of_distribution:novelty": float(guard.novel.mean()),
        "out_of_distribution:feature": float(guard.any_feature.mean()),
    }
