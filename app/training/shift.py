"""Synthetic and real distribution shifts, and how well the referral scores detect them.

Each synthetic shift transforms in-distribution test encounters; detection is the AUROC of a
score separating the shifted copies from the originals (1.0: every shifted encounter scores
above every original). The real shift retrains with patients under 30 held out.
"""

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from app.features import FeatureSpec
from app.features.columns import AGE_COLUMN, COUNT_COLUMNS
from app.features.encoder import Columns, Value, is_missing
from app.inference.engine import MCDropoutEngine
from app.inference.guard import CATEGORY_COLUMNS

if TYPE_CHECKING:
    from app.training.data import Dataset
    from app.training.referral import Scored
    from app.training.train import Recipe

YOUNG_AGES: Final = frozenset({"[0-10)", "[10-20)", "[20-30)"})
NOISE_SIGMA: Final = 1.0

ShiftFn = Callable[
    [Columns, np.ndarray, FeatureSpec, np.random.Generator], tuple[Columns, np.ndarray]
]


def _counts_x3(
    columns: Columns, x: np.ndarray, spec: FeatureSpec, rng: np.random.Generator
) -> tuple[Columns, np.ndarray]:
    out = dict(columns)
    for name in COUNT_COLUMNS:
        out[name] = [None if is_missing(v) else 3 * int(float(v)) for v in columns[name]]  # type: ignore[arg-type]
    return out, spec.encode(out)


def _counts_10sd(
    columns: Columns, x: np.ndarray, spec: FeatureSpec, rng: np.random.Generator
) -> tuple[Columns, np.ndarray]:
    # NOTE: ten standard deviations on the model's own feature scale (log1p for visit counts).
    out = dict(columns)
    n = len(x)
    for stat in spec.numeric:
        z = stat.mean + 10.0 * stat.std
        raw = math.expm1(z) if stat.log1p else z
        out[stat.name] = [round(raw)] * n
    return out, spec.encode(out)


def _random_categories(
    columns: Columns, x: np.ndarray, spec: FeatureSpec, rng: np.random.Generator
) -> tuple[Columns, np.ndarray]:
    # NOTE: every value is one seen in the data, so no per-feature check can fire: only the
    # combination is nonsensical.
    out = dict(columns)
    n = len(x)
    for name in CATEGORY_COLUMNS:
        values = sorted({str(v) for v in columns[name] if not is_missing(v)})
        if not values:
            continue
        picks: list[Value] = [values[i] for i in rng.integers(0, len(values), n)]
        out[name] = picks
    return out, spec.encode(out)


def _gaussian_noise(
    columns: Columns, x: np.ndarray, spec: FeatureSpec, rng: np.random.Generator
) -> tuple[Columns, np.ndarray]:
    noise = rng.normal(0.0, NOISE_SIGMA, size=x.shape).astype(np.float32)
    return columns, x + noise


SHIFTS: Final[Mapping[str, ShiftFn]] = {
    "counts_x3": _counts_x3,
    "counts_at_10_sd": _counts_10sd,
    "random_categories": _random_categories,
    f"gaussian_noise_sigma_{NOISE_SIGMA:g}": _gaussian_noise,
}


def apply_shift(
    name: str, columns: Columns, x: np.ndarray, spec: FeatureSpec, seed: int
) -> tuple[Columns, np.ndarray]:
    """Return shifted copies of encounters (their raw columns and encoding)."""
    return SHIFTS[name](columns, x, spec, np.random.default_rng(seed))


def young(columns: Columns) -> np.ndarray:
    """Mark encounters of patients under 30."""
    return np.array([str(v) in YOUNG_AGES for v in columns[AGE_COLUMN]], dtype=bool)


def detection_auroc(in_distribution: np.ndarray, shifted: np.ndarray) -> float:
    """AUROC of a score separating shifted encounters (positive) from in-distribution ones."""
    from app.training.metrics import auroc

    labels = np.r_[np.zeros(len(in_distribution)), np.ones(len(shifted))]
    return auroc(labels, np.r_[in_distribution, shifted])


def _scores(scored: "Scored") -> dict[str, np.ndarray]:
    return {
        "combined": scored.combined,
        "std": scored.std,
        "mutual_information": scored.mutual_information,
        "novelty": scored.guard.novelty,
    }


def evaluate_synthetic(
    score_fn: Callable[[Columns, np.ndarray], "Scored"],
    baseline: "Scored",
    columns: Columns,
    x: np.ndarray,
    spec: FeatureSpec,
    *,
    seed: int,
) -> dict[str, dict[str, float]]:
    """Per shift: detection AUROC of each score and the share of shifted encounters flagged."""
    out = {}
    for k, name in enumerate(SHIFTS):
        shifted_columns, shifted_x = apply_shift(name, columns, x, spec, seed + k)
        shifted = score_fn(shifted_columns, shifted_x)
        before, after = _scores(baseline), _scores(shifted)
        row = {f"auroc_{s}": detection_auroc(before[s], after[s]) for s in before}
        row["flagged_shifted"] = float(shifted.flagged.mean())
        row["feature_reason_shifted"] = float(shifted.guard.any_feature.mean())
        out[name] = row
    return out


def without_column(scored: "Scored", column: str) -> "Scored":
    """The same scores as if the guard had no per-feature check on `column`."""
    from dataclasses import replace

    from app.inference.guard import GUARD_COLUMNS

    ood = scored.guard.feature_ood.copy()
    ood[:, GUARD_COLUMNS.index(column)] = False
    return replace(scored, guard=replace(scored.guard, feature_ood=ood))


def evaluate_heldout(in_distribution: "Scored", held_out: "Scored") -> dict[str, float]:
    """How well each score separates a held-out population from in-distribution encounters."""
    before, after = _scores(in_distribution), _scores(held_out)
    row = {f"auroc_{s}": detection_auroc(before[s], after[s]) for s in before}
    no_age_in, no_age_out = (
        without_column(in_distribution, AGE_COLUMN),
        without_column(held_out, AGE_COLUMN),
    )
    row["auroc_combined_without_age_check"] = detection_auroc(
        no_age_in.combined, no_age_out.combined
    )
    row["flagged_held_out"] = float(held_out.flagged.mean())
    row["flagged_held_out_without_age_check"] = float(no_age_out.flagged.mean())
    row["novel_held_out"] = float(held_out.guard.novel.mean())
    row["flagged_in_distribution"] = float(in_distribution.flagged.mean())
    row["n_held_out"] = len(held_out.std)
    row["n_in_distribution"] = len(in_distribution.std)
    return row


def heldout_under_30(
    dataset: "Dataset",
    split: np.ndarray,
    card: Mapping[str, Any],
    *,
    recipe: "Recipe",
    seed: int,
    n_samples: int,
) -> dict[str, Any]:
    """Retrain on patients aged 30+ only (same recipe), then try to tell the under-30s apart."""
    from app.training.policy import fit_policy
    from app.training.referral import score
    from app.training.train import train_model

    is_young = young(dataset.columns())
    train, val, test = (split == 0) & ~is_young, (split == 1) & ~is_young, (split == 2) & ~is_young
    patients = dataset.frame["patient_nbr"].to_numpy()
    # NOTE: an under-30 encounter of a patient with a training encounter at 30+ is not unseen.
    held = is_young & ~np.isin(patients, patients[train])
    spec = FeatureSpec.fit(dataset.columns(train))
    cols = {
        name: dataset.columns(mask)
        for name, mask in [("tr", train), ("va", val), ("te", test), ("held", held)]
    }
    xs = {name: spec.encode(c) for name, c in cols.items()}
    model, _ = train_model(
        xs["tr"], dataset.labels[train], xs["va"], dataset.labels[val],
        recipe=recipe, seed=seed, progress=False,
    )  # fmt: skip
    review_rate = float(card["uncertainty"]["review_rate"])
    guard, uncertainty = fit_policy(
        model, cols["tr"], xs["tr"], cols["va"], xs["va"],
        review_rate=review_rate, n_samples=n_samples, seed=seed,
    )  # fmt: skip
    engine = MCDropoutEngine(model, device="cpu", default_seed=seed)

    def score_fn(name: str) -> "Scored":
        return score(
            engine, guard, cols[name], xs[name], calibration=None,
            std_threshold=float(uncertainty["threshold"]), n_samples=n_samples, seed=seed,
        )  # fmt: skip

    return evaluate_heldout(score_fn("te"), score_fn("held"))
