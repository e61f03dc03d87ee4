"""Decision-aware referral: net benefit at the action threshold for each candidate flag, against
random referral matched on risk, with paired bootstrap intervals.

Definitions (calibrated risk p, action threshold t, harm weight w = t / (1 - t)):
- the model's decision is to act (e.g. enrol in a transitional-care programme) when p >= t;
- net benefit of a group of n cases (Vickers and Elkin): (TP - w FP) / n, counted among the
  cases it acts on; on the retained cases it is what the model's own decisions are worth;
- a decision is wrong when it acts on a case that was not readmitted or does not act on one
  that was (unweighted share); net benefit is the prevalence minus the weighted regret
  (FN + w FP) / n, so the two move together but weigh a needless enrolment by w;
- risk-matched random referral: the cases are cut into `RISK_BINS` quantile bins of p; for a
  flag that refers k_b of the n_b cases of bin b, the baseline refers k_b cases of that bin at
  random. Its metrics are the expectation over such draws (each case of bin b retained with
  probability 1 - k_b / n_b), so no draw's luck enters the comparison.
Intervals resample cases (the same resamples for every row, so differences are paired); the
referral itself is held fixed, as in `app.training.referral`.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy.stats import spearmanr

from app.inference.calibration import calibrate, logit_cut, share_acting
from app.inference.engine import MCDropoutEngine
from app.inference.flags import decision_flip, flagged
from app.inference.guard import GuardResult
from app.training.metrics import auroc, bootstrap_auroc_ci, brier
from app.training.referral import pass_logits, referred_mask

FRACTIONS: Final = (0.05, 0.10, 0.20)
RISK_BINS: Final = 20
RESAMPLES: Final = 1000
MEASURES: Final = ("std", "logit_std", "mutual_information", "decision_flip")
BASELINES: Final = ("closeness", "random")


def harm_weight(threshold: float) -> float:
    """The exchange rate of net benefit: one needless action costs t / (1 - t) of a true one."""
    return threshold / (1.0 - threshold)


def net_benefit(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    """Net benefit of acting when p >= threshold, per case of the group (NaN when empty)."""
    if len(y) == 0:
        return float("nan")
    act = np.asarray(p) >= threshold
    return float(np.mean(act * (y - (1 - y) * harm_weight(threshold))))


@dataclass(frozen=True)
class PassScores:
    """Per-case summaries of the N calibrated MC passes, at one action threshold."""

    probability: np.ndarray  # calibrated MC mean
    std: np.ndarray  # std of the uncalibrated pass probabilities (today's flag)
    logit_std: np.ndarray
    mutual_information: np.ndarray
    decision_flip: np.ndarray  # share of passes on the other side of the threshold

    def measure(self, name: str) -> np.ndarray:
        """One candidate flag's score by name: higher is referred first."""
        value: np.ndarray = getattr(self, name)
        return value


def pass_scores(
    logits: np.ndarray, calibration: Mapping[str, Any] | None, threshold: float
) -> PassScores:
    """Summarise `[rows, N]` float32 pass logits the way serving does, plus the logit spread."""
    z = np.asarray(logits, dtype=np.float64)
    p = 1.0 / (1.0 + np.exp(-z))
    mean = p.mean(axis=1)
    clipped = np.clip(p, 1e-12, 1 - 1e-12)
    entropy = -(clipped * np.log(clipped) + (1 - clipped) * np.log1p(-clipped)).mean(axis=1)
    m = np.clip(mean, 1e-12, 1 - 1e-12)
    mi = np.maximum(-(m * np.log(m) + (1 - m) * np.log1p(-m)) - entropy, 0.0)
    probability = calibrate(mean, calibration)
    # NOTE: the same float32 comparison as the engine's `share_above`, so the numbers match.
    above = (np.asarray(logits) >= np.float32(logit_cut(threshold, calibration))).mean(axis=1)
    acting = share_acting(above, calibration)
    flip = decision_flip(probability, acting, threshold, np.asarray(logits).shape[1])
    return PassScores(probability, p.std(axis=1, ddof=1), z.std(axis=1, ddof=1), mi, flip)


def shipped_flags(
    engine: MCDropoutEngine,
    x: np.ndarray,
    decision: Mapping[str, Any],
    calibration: Mapping[str, Any] | None,
    guard: GuardResult,
    *,
    n_samples: int,
    seed: int,
) -> np.ndarray:
    """The encounters a card's decision rule sends to review when the MC passes are drawn at
    `seed`: the decision could flip in more than `level` of them, or the guard gives a reason."""
    logits = pass_logits(engine, x, n_samples=n_samples, seed=seed)
    flip = pass_scores(logits, calibration, float(decision["action_threshold"])).decision_flip
    return flagged(flip, float(decision["level"]), guard)


def candidate_scores(scores: PassScores, threshold: float, seed: int) -> dict[str, np.ndarray]:
    """Every candidate and baseline ranking: higher is referred first."""
    distance = np.abs(_logit(scores.probability) - _logit(np.array(threshold)))
    out = {name: scores.measure(name) for name in MEASURES}
    out["closeness"] = -distance
    out["random"] = np.random.default_rng(seed).random(len(distance))
    return out


def choose_action_threshold(
    y: np.ndarray, p: np.ndarray, grid: Sequence[float] | None = None
) -> dict[str, Any]:
    """The validation decision curve and the threshold where the model adds most over the
    better of acting on everyone and on no one (net benefit of treat-all is prevalence -
    (1 - prevalence) w; of treat-none, 0)."""
    thresholds = np.round(np.arange(0.05, 0.501, 0.01), 2) if grid is None else np.asarray(grid)
    prevalence = float(np.mean(y))
    curve = []
    for t in thresholds:
        model = net_benefit(y, p, float(t))
        everyone = prevalence - (1 - prevalence) * harm_weight(float(t))
        curve.append(
            {
                "threshold": float(t),
                "net_benefit": model,
                "treat_all": everyone,
                "added": model - max(everyone, 0.0),
                "acted": float(np.mean(p >= t)),
            }
        )
    best = max(curve, key=lambda row: row["added"])
    return {"threshold": best["threshold"], "prevalence": prevalence, "curve": curve}


class PairedBootstrap:
    """Resamples of case indices shared by every statistic, so differences are paired."""

    def __init__(self, n: int, *, resamples: int = RESAMPLES, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.index = rng.integers(0, n, size=(resamples, n), dtype=np.int32)

    def ratios(self, pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """`[resamples, len(pairs)]`: sum(num) / sum(den) of each pair on each resample."""
        out = np.empty((len(self.index), len(pairs)))
        for j, (num, den) in enumerate(pairs):
            with np.errstate(invalid="ignore", divide="ignore"):
                out[:, j] = num[self.index].sum(axis=1) / den[self.index].sum(axis=1)
        return out


def _ci(values: np.ndarray) -> list[float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [float("nan"), float("nan")]
    lo, hi = np.quantile(finite, [0.025, 0.975])
    return [float(lo), float(hi)]


def _ratio(num: np.ndarray, den: np.ndarray) -> float:
    total = float(den.sum())
    return float(num.sum() / total) if total else float("nan")


def matched_keep(
    probability: np.ndarray, referred: np.ndarray, bins: int = RISK_BINS
) -> np.ndarray:
    """Each case's chance to be retained by random referral matched on risk to `referred`."""
    edges = np.quantile(probability, np.linspace(0, 1, bins + 1)[1:-1])
    which = np.searchsorted(edges, probability, side="right")
    size = np.bincount(which, minlength=bins)
    sent = np.bincount(which, weights=referred.astype(np.float64), minlength=bins)
    keep: np.ndarray = 1.0 - (sent / np.maximum(size, 1))[which]
    return keep


def evaluate_referral(
    y: np.ndarray,
    p: np.ndarray,
    referred: np.ndarray,
    closeness_referred: np.ndarray,
    threshold: float,
    boot: PairedBootstrap,
    *,
    seed: int,
) -> dict[str, Any]:
    """Decision and ranking metrics of one referral: retained cases, referred cases, and the
    retained net benefit against risk-matched random and closeness referral of the same size."""
    y = np.asarray(y, dtype=np.float64)
    act = p >= threshold
    gain = act * (y - (1 - y) * harm_weight(threshold))
    correct = (act == (y == 1)).astype(np.float64)
    kept, sent = (~referred).astype(np.float64), referred.astype(np.float64)
    matched = matched_keep(p, referred)
    near = (~closeness_referred).astype(np.float64)
    pairs = [
        (kept * gain, kept), (matched * gain, matched), (near * gain, near),
        (kept * correct, kept), (sent * (1 - correct), sent),
    ]  # fmt: skip
    draws = boot.ratios(pairs)
    nb, nb_matched, nb_near = (_ratio(num, den) for num, den in pairs[:3])
    retained_y, retained_p = y[~referred], p[~referred]
    return {
        "referred_share": float(referred.mean()),
        "retained_net_benefit": nb,
        "retained_net_benefit_ci": _ci(draws[:, 0]),
        "matched_random_net_benefit": nb_matched,
        "net_benefit_minus_matched_random": nb - nb_matched,
        "net_benefit_minus_matched_random_ci": _ci(draws[:, 0] - draws[:, 1]),
        "net_benefit_minus_closeness": nb - nb_near,
        "net_benefit_minus_closeness_ci": _ci(draws[:, 0] - draws[:, 2]),
        "retained_decision_accuracy": _ratio(*pairs[3]),
        "retained_decision_accuracy_ci": _ci(draws[:, 3]),
        "referred_wrong_share": _ratio(*pairs[4]),
        "referred_wrong_share_ci": _ci(draws[:, 4]),
        "retained_brier": brier(retained_y, retained_p),
        "retained_brier_ci": _ci(boot.ratios([(kept * (p - y) ** 2, kept)])[:, 0]),
        "retained_auroc": auroc(retained_y, retained_p),
        "retained_auroc_ci": list(
            bootstrap_auroc_ci(retained_y, retained_p, resamples=len(boot.index), seed=seed)
        ),
    }


def decision_table(
    y: np.ndarray,
    scores: PassScores,
    threshold: float,
    *,
    validation: PassScores,
    guard: GuardResult,
    validation_guard: GuardResult,
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
) -> dict[str, Any]:
    """The candidate table on one split: rankings at each referred share, then each measure as
    a policy (domain guard OR measure above its level fitted on validation at each budget)."""
    from app.training.policy import fit_std_threshold

    p = scores.probability
    boot = PairedBootstrap(len(y), seed=seed)
    ranked = candidate_scores(scores, threshold, seed)
    correlation = {
        name: float(spearmanr(s, p).statistic) for name, s in ranked.items() if name != "random"
    }
    rows: list[dict[str, Any]] = []
    for fraction in fractions:
        near = referred_mask(ranked["closeness"], fraction)
        for name, s in ranked.items():
            referred = referred_mask(s, fraction)
            metrics = evaluate_referral(y, p, referred, near, threshold, boot, seed=seed)
            rows.append({"method": name, "kind": "ranking", "fraction": fraction, **metrics})
        for name in MEASURES:
            level = fit_std_threshold(validation.measure(name), validation_guard.flagged, fraction)
            referred = guard.flagged | (scores.measure(name) > level)
            near = referred_mask(ranked["closeness"], float(referred.mean()))
            metrics = evaluate_referral(y, p, referred, near, threshold, boot, seed=seed)
            rows.append(
                {"method": name, "kind": "policy", "fraction": fraction, "level": level, **metrics}
            )
    return {
        "action_threshold": threshold,
        "harm_weight": harm_weight(threshold),
        "net_benefit_all_retained": net_benefit(y, p, threshold),
        "risk_bins": RISK_BINS,
        "spearman_with_risk": correlation,
        "rows": rows,
    }


def curves(
    y: np.ndarray, scores: PassScores, threshold: float, *, seed: int, top: float = 0.3
) -> dict[str, Any]:
    """Retained net benefit and referred wrong share on a grid of referred shares, per ranking,
    and the risk-matched random baseline of the decision-flip ranking."""
    p = scores.probability
    y = np.asarray(y, dtype=np.float64)
    act = p >= threshold
    gain = act * (y - (1 - y) * harm_weight(threshold))
    wrong = (act != (y == 1)).astype(np.float64)
    grid = np.round(np.arange(0.01, top + 1e-9, 0.01), 2)
    out: dict[str, Any] = {"grid": grid.tolist(), "net_benefit": {}, "wrong_share": {}}
    ranked = candidate_scores(scores, threshold, seed)
    for name, s in ranked.items():
        masks = [referred_mask(s, float(f)) for f in grid]
        out["net_benefit"][name] = [float(gain[~m].mean()) for m in masks]
        out["wrong_share"][name] = [float(wrong[m].mean()) for m in masks]
    flip = [referred_mask(ranked["decision_flip"], float(f)) for f in grid]
    keeps = [matched_keep(p, m) for m in flip]
    out["net_benefit"]["decision_flip, risk-matched random"] = [_ratio(k * gain, k) for k in keeps]
    return out


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    out: np.ndarray = np.log(clipped) - np.log1p(-clipped)
    return out
