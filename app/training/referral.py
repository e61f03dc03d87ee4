"""The honest referral report: what referring encounters to a clinician does to the rest.

For each referral score (MC std, mutual information, the domain guard's score, the combined
policy and a random draw) the top 5, 10, 20 and 30% are referred, and the AUROC, Brier score
and positive rate of the retained and of the referred encounters are reported with bootstrap
95% intervals. Intervals resample encounters within each group, the referral held fixed.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from app.features.encoder import Columns
from app.inference.calibration import calibrate
from app.inference.engine import MCDropoutEngine
from app.inference.flags import flagged
from app.inference.guard import DomainGuard, GuardResult
from app.training.metrics import auroc, bootstrap_auroc_ci, brier

FRACTIONS: Final = (0.05, 0.10, 0.20, 0.30)
RESAMPLES: Final = 1000
CHUNK: Final = 1024
# NOTE: finite (not inf) so rank statistics still order the feature-flagged cases among themselves.
FEATURE_RANK: Final = 1e6


@dataclass(frozen=True)
class Scored:
    """Everything the report needs about a set of encounters, scored once."""

    probability: np.ndarray  # calibrated MC mean
    std: np.ndarray
    mutual_information: np.ndarray
    guard: GuardResult
    std_threshold: float

    @property
    def combined(self) -> np.ndarray:
        """The combined policy's score (flagged exactly when above 1)."""
        return referral_score(self.std, self.std_threshold, self.guard)

    @property
    def flagged(self) -> np.ndarray:
        """The flag rule's decisions."""
        return flagged(self.std, self.std_threshold, self.guard)


def mc_scores(
    engine: MCDropoutEngine, x: np.ndarray, *, n_samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MC mean, std and mutual information, in row chunks to bound memory."""
    parts = []
    for start in range(0, len(x), CHUNK):
        r = engine.predict(
            torch.from_numpy(x[start : start + CHUNK]), n_samples=n_samples, seed=seed
        )
        parts.append(np.stack([r.mean.numpy(), r.std.numpy(), r.mutual_information.numpy()]))
    mean, std, mi = np.concatenate(parts, axis=1).astype(np.float64)
    return mean, std, mi


def pass_logits(engine: MCDropoutEngine, x: np.ndarray, *, n_samples: int, seed: int) -> np.ndarray:
    """The `[rows, N]` float32 logits of the MC passes, in row chunks."""
    parts = [
        engine.pass_logits(torch.from_numpy(x[s : s + CHUNK]), n_samples=n_samples, seed=seed)
        for s in range(0, len(x), CHUNK)
    ]
    return np.concatenate(parts) if parts else np.zeros((0, n_samples), dtype=np.float32)


def score(
    engine: MCDropoutEngine,
    guard: DomainGuard,
    columns: Columns,
    x: np.ndarray,
    *,
    calibration: Mapping[str, Any] | None,
    std_threshold: float,
    n_samples: int,
    seed: int,
) -> Scored:
    """Score encounters with the engine and the guard."""
    mean, std, mi = mc_scores(engine, x, n_samples=n_samples, seed=seed)
    return Scored(
        calibrate(mean, calibration), std, mi, guard.check_columns(columns, x), std_threshold
    )


def rankings(scored: Scored, seed: int) -> dict[str, np.ndarray]:
    """Referral scores per method: higher is referred first."""
    g = scored.guard
    return {
        "std": scored.std,
        "mutual_information": scored.mutual_information,
        "domain": g.novelty + np.where(g.any_feature, FEATURE_RANK, 0.0),
        "combined": scored.combined,
        "random": np.random.default_rng(seed).random(len(scored.std)),
    }


def referred_mask(score_: np.ndarray, fraction: float) -> np.ndarray:
    """The top `fraction` of encounters by score (ties broken by position)."""
    k = round(fraction * len(score_))
    order = np.argsort(-score_, kind="stable")
    mask = np.zeros(len(score_), dtype=bool)
    mask[order[:k]] = True
    return mask


def bootstrap_mean_ci(
    values: np.ndarray, *, resamples: int = RESAMPLES, seed: int = 0, chunk: int = 100
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of a mean."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = [
        values[rng.integers(0, values.size, (min(chunk, resamples - s), values.size))].mean(axis=1)
        for s in range(0, resamples, chunk)
    ]
    lo, hi = np.quantile(np.concatenate(means), [0.025, 0.975])
    return float(lo), float(hi)


def group_metrics(y: np.ndarray, p: np.ndarray, *, seed: int) -> dict[str, Any]:
    """AUROC, Brier and positive rate of one group, each with its bootstrap interval."""
    y = np.asarray(y)
    if y.size == 0:
        return {"n": 0}
    squared = (np.asarray(p, dtype=np.float64) - y) ** 2
    return {
        "n": int(y.size),
        "auroc": auroc(y, p),
        "auroc_ci": list(bootstrap_auroc_ci(y, p, resamples=RESAMPLES, seed=seed)),
        "brier": brier(y, p),
        "brier_ci": list(bootstrap_mean_ci(squared, seed=seed)),
        "positive_rate": float(y.mean()),
        "positive_rate_ci": list(bootstrap_mean_ci(y, seed=seed)),
    }


def referral_table(
    y: np.ndarray,
    scored: Scored,
    *,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One row per (method, fraction referred): metrics of the retained and referred groups."""
    rows = []
    for method, s in rankings(scored, seed).items():
        for fraction in fractions:
            referred = referred_mask(s, fraction)
            rows.append(
                {
                    "method": method,
                    "fraction": fraction,
                    "retained": group_metrics(
                        y[~referred], scored.probability[~referred], seed=seed
                    ),
                    "referred": group_metrics(y[referred], scored.probability[referred], seed=seed),
                }
            )
    return rows


def referral_curve(
    y: np.ndarray, scored: Scored, path: Path, *, seed: int = 0, top: float = 0.5
) -> None:
    """Plot retained AUROC and referred positive rate against the share referred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.round(np.arange(0.0, top + 1e-9, 0.01), 2)
    fig, (ax_auc, ax_pos) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method, s in rankings(scored, seed).items():
        aucs, pos = [], []
        for fraction in grid:
            referred = referred_mask(s, fraction)
            aucs.append(auroc(y[~referred], scored.probability[~referred]))
            pos.append(y[referred].mean() if referred.any() else np.nan)
        ax_auc.plot(grid * 100, aucs, label=method)
        ax_pos.plot(grid * 100, pos, label=method)
    ax_auc.set(xlabel="encounters referred (%)", ylabel="AUROC of retained", title="Retained")
    ax_pos.set(xlabel="encounters referred (%)", ylabel="readmission rate", title="Referred")
    ax_pos.axhline(y.mean(), color="grey", lw=0.8, ls="--")
    ax_auc.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def flag_agreement(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How two flag sets agree: Jaccard of the flagged sets and share of identical decisions."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    union = int((a | b).sum())
    return {
        "jaccard": float((a & b).sum() / union) if union else 1.0,
        "same_decision": float((a == b).mean()),
        "flag_rate_a": float(a.mean()),
        "flag_rate_b": float(b.mean()),
    }


def referral_score(std: np.ndarray, std_threshold: float, guard: GuardResult) -> np.ndarray:
    """One number per encounter, above 1 exactly when the combined policy flags it.

    The policy: flag when std > threshold, or the novelty score is above its threshold, or any
    per-feature check fires. Each continuous part is divided by its threshold so they share one
    scale; a per-feature reason ranks first (the score gains `FEATURE_RANK`).
    """
    ratio = np.maximum(
        np.asarray(std, dtype=np.float64) / max(std_threshold, 1e-12),
        guard.novelty / max(guard.novelty_threshold, 1e-12),
    )
    out: np.ndarray = ratio + np.where(guard.any_feature, FEATURE_RANK, 0.0)
    return out
