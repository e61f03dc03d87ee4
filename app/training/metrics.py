"""Discrimination and calibration metrics, with a vectorised bootstrap for AUROC."""

from typing import Final

import numpy as np

ECE_BINS: Final = 15


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (NaN when only one class is present): the share of (positive,
    negative) pairs the positive scores higher, ties counting half (the Mann-Whitney
    statistic, which `roc_auc_score` computes too).

    NOTE: counted with one sort of the negatives rather than scikit-learn, whose input checks
    cost more than the sort for the many cohorts of live monitoring; the counts are integers.
    """
    positive = np.asarray(y).astype(bool)
    scores = np.asarray(p, dtype=np.float64)
    negatives = np.sort(scores[~positive])
    if len(negatives) in (0, len(scores)):
        return float("nan")
    high = np.sort(scores[positive])  # NOTE: sorted queries walk the negatives in order
    below = np.searchsorted(negatives, high, side="left")
    tied = np.searchsorted(negatives, high, side="right") - below
    wins = 2 * int(below.sum()) + int(tied.sum())  # NOTE: twice the wins, in integers
    return wins / (2.0 * len(high) * len(negatives))


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (area under the precision-recall curve)."""
    if len(np.unique(y)) < 2:
        return float("nan")
    from sklearn.metrics import average_precision_score  # NOTE: training only; not in the service

    return float(average_precision_score(y, p))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probability."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - y) ** 2))


def reliability(
    y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width bin: mean predicted probability, observed rate and count."""
    p = np.asarray(p, dtype=np.float64)
    index = np.clip((p * bins).astype(np.int64), 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        confidence = np.bincount(index, weights=p, minlength=bins) / counts
        observed = np.bincount(index, weights=np.asarray(y, np.float64), minlength=bins) / counts
    return confidence, observed, counts


def ece(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-width probability bins."""
    confidence, observed, counts = reliability(y, p, bins)
    used = counts > 0
    gaps = np.abs(confidence[used] - observed[used])
    return float(np.sum(counts[used] * gaps) / counts.sum()) if counts.sum() else float("nan")


_LOGIT_EPS: Final = 1e-12
_NORMAL_CELL: Final = 100
_NEWTON_STEPS: Final = 50


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), _LOGIT_EPS, 1.0 - _LOGIT_EPS)
    out: np.ndarray = np.log(clipped) - np.log1p(-clipped)
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow (and cheaper than exp)."""
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def calibration_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration slope: b of the logistic recalibration logit P(y) = a + b * logit(p), fitted
    by maximum likelihood (Newton's method). 1 is ideal; below 1, predictions are too extreme.
    NaN with one class only, or when the fit does not converge."""
    y = np.asarray(y, dtype=np.float64)
    x = _logit(p)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    a, b = 0.0, 1.0
    for _ in range(_NEWTON_STEPS):
        q = _sigmoid(a + b * x)
        w = q * (1.0 - q)
        r = y - q
        ga, gb = r.sum(), (r * x).sum()
        haa, hab, hbb = w.sum(), (w * x).sum(), (w * x * x).sum()
        det = haa * hbb - hab * hab
        if not det > 0:
            return float("nan")
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        a, b = a + da, b + db
        if abs(da) < 1e-12 and abs(db) < 1e-12:
            return float(b)
    return float("nan")  # NOTE: no maximum (separable outcomes): no slope to report


def calibration_intercept(y: np.ndarray, p: np.ndarray) -> float:
    """Calibration-in-the-large: a of logit P(y) = a + logit(p), the slope fixed at 1 (logit(p)
    an offset), fitted by maximum likelihood. 0 is ideal; above 0, risks are underestimated.
    NaN with one class only."""
    y = np.asarray(y, dtype=np.float64)
    x = _logit(p)
    if len(y) == 0 or y.min() == y.max():
        return float("nan")
    a = 0.0
    for _ in range(_NEWTON_STEPS):
        q = _sigmoid(a + x)
        step = (y - q).sum() / (q * (1.0 - q)).sum()
        a += step
        if abs(step) < 1e-12:
            return float(a)
    return float("nan")


def bootstrap_auroc_ci(
    y: np.ndarray,
    p: np.ndarray,
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    chunk: int = 100,
) -> tuple[float, float]:
    """Percentile bootstrap interval for AUROC, resamples vectorised over score groups."""
    y = np.asarray(y).astype(bool)
    n = len(y)
    # Rows with the same score form one group; AUROC only needs positives and negatives per group.
    _, group = np.unique(np.asarray(p), return_inverse=True)
    n_groups = int(group.max()) + 1 if n else 0
    rng = np.random.default_rng(seed)
    aucs = []
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        picks = rng.integers(0, n, size=(r, n))
        flat = (np.arange(r)[:, None] * n_groups + group[picks]).ravel()
        is_pos = y[picks].ravel()
        pos = np.bincount(flat[is_pos], minlength=r * n_groups).reshape(r, n_groups)
        neg = np.bincount(flat[~is_pos], minlength=r * n_groups).reshape(r, n_groups)
        aucs.append(_grouped_aurocs(pos, neg))
    return _percentile_interval(np.concatenate(aucs), level)


def bootstrap_auroc_ci_grouped(
    y: np.ndarray,
    p: np.ndarray,
    *,
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    decimals: int = 3,
) -> tuple[float, float]:
    """A percentile bootstrap interval for AUROC at a cost of resamples x score groups rather
    than resamples x rows (`bootstrap_auroc_ci`): scores rounded to `decimals` form the groups,
    and a resample's (group, class) counts are drawn at once, Poisson with the cell's size as
    mean (the Poisson bootstrap, the large-sample equal of resampling rows). Only the interval
    uses the rounded scores; ties within a group count half, as in `auroc`."""
    y = np.asarray(y).astype(bool)
    n = len(y)
    if n == 0 or y.all() or not y.any():
        return float("nan"), float("nan")
    scale = 10.0**decimals
    group = np.rint(np.asarray(p, dtype=np.float64) * scale).astype(np.int64)
    group -= group.min()
    cells = np.bincount(group * 2 + y, minlength=2 * (int(group.max()) + 1))
    used = np.flatnonzero(cells.reshape(-1, 2).sum(axis=1))  # NOTE: empty groups add nothing
    cells = cells.reshape(-1, 2)[used].ravel()
    n_groups = len(used)
    rng = np.random.default_rng(seed)
    # NOTE: each cell's count Poisson(its size): the Poisson bootstrap, which weighs every row
    # Poisson(1) times, where the classic one draws n rows (a multinomial, slower to draw).
    # Cells of 100 rows or more draw from the normal approximation N(size, size), rounded,
    # several times cheaper and within a skewness of 0.1 of the Poisson.
    counts = np.empty((resamples, 2 * n_groups), dtype=np.int64)
    large = cells >= _NORMAL_CELL
    counts[:, ~large] = rng.poisson(cells[~large], size=(resamples, int((~large).sum())))
    spread = rng.standard_normal((resamples, int(large.sum()))) * np.sqrt(cells[large])
    counts[:, large] = np.maximum(np.rint(cells[large] + spread), 0).astype(np.int64)
    return _percentile_interval(_grouped_aurocs(counts[:, 1::2], counts[:, 0::2]), level)


def _grouped_aurocs(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Each resample's AUROC from its positives and negatives per score group `[r, groups]`
    (groups in score order; a tie within a group counts half). NaN with one class."""
    below = np.cumsum(neg, axis=1) - neg
    wins = np.sum(pos * (below + 0.5 * neg), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = wins / (pos.sum(axis=1) * neg.sum(axis=1))
    return out


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    """The central `level` interval of the finite resampled values (NaN when there are none)."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def summary(y: np.ndarray, p: np.ndarray, *, ci_seed: int = 0) -> dict[str, float]:
    """AUROC with its bootstrap interval, AUPRC, Brier and ECE of probabilities `p`."""
    lo, hi = bootstrap_auroc_ci(y, p, seed=ci_seed)
    return {
        "auroc": auroc(y, p),
        "auroc_ci_low": lo,
        "auroc_ci_high": hi,
        "auprc": auprc(y, p),
        "brier": brier(y, p),
        "ece": ece(y, p),
    }
