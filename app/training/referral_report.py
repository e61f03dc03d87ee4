"""The referral report: referral table, curve, decision-aware flags, flag stability across
seeds, shift tests."""

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.features import FeatureSpec
from app.features.encoder import Columns
from app.inference.engine import MCDropoutEngine
from app.inference.guard import DomainGuard
from app.training.data import Dataset
from app.training.decision import (
    PassScores,
    choose_action_threshold,
    pass_scores,
    shipped_flags,
)
from app.training.decision_report import (
    SENSITIVITY_THRESHOLD,
    decision_plot,
    decision_section,
    render_decision,
)
from app.training.policy import decision_rates, rates
from app.training.referral import (
    CHUNK,
    Scored,
    flag_agreement,
    group_metrics,
    pass_logits,
    referral_curve,
    referral_table,
    score,
)
from app.training.train import Recipe

log = logging.getLogger(__name__)


def build_report(
    *,
    dataset: Dataset,
    split: np.ndarray,
    model: torch.nn.Module,
    spec: FeatureSpec,
    card: Mapping[str, Any],
    out_dir: Path,
    recipe: Recipe | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write `referral.json`, `referral.md`, `referral_curve.png` and `decision_curve.png`;
    return the JSON."""
    from app.training import shift

    mc = card.get("mc", {})
    n_samples, mc_seed = int(mc.get("n_samples", 256)), int(mc.get("seed", 0))
    threshold = float(card["uncertainty"]["threshold"])
    guard = DomainGuard.from_dict(card["domain_guard"], model)
    engine = MCDropoutEngine(model, device="cpu", default_seed=mc_seed)

    def score_fn(columns: Columns, x: np.ndarray, *, at_seed: int = mc_seed) -> Scored:
        return score(
            engine, guard, columns, x, calibration=card.get("calibration"),
            std_threshold=threshold, n_samples=n_samples, seed=at_seed,
        )  # fmt: skip

    test, validation = split == 2, split == 1
    columns, x, y = dataset.columns(test), spec.encode(dataset.columns(test)), dataset.labels[test]
    scored = score_fn(columns, x)
    other = score_fn(columns, x, at_seed=mc_seed + 1)
    val_columns = dataset.columns(validation)
    x_val = spec.encode(val_columns)
    val = score_fn(val_columns, x_val)
    decision = _decision_section(
        card, engine, y, x, dataset.labels[validation], x_val, scored, val,
        out_dir=out_dir, seed=seed,
    )  # fmt: skip
    se = np.median(mc_scores_se(engine, x, n_samples=n_samples, seed=mc_seed))
    referral_curve(y, scored, out_dir / "referral_curve.png", seed=seed)
    report: dict[str, Any] = {
        "n_test": int(test.sum()),
        "n_samples": n_samples,
        "std_threshold": threshold,
        "novelty_threshold": guard.threshold,
        "flag_rates": {
            "validation": rates(val.std, threshold, val.guard),
            "test": rates(scored.std, threshold, scored.guard),
        },
        "seed_agreement": {
            "seeds": [mc_seed, mc_seed + 1],
            "std_flag": flag_agreement(scored.std > threshold, other.std > threshold),
            "combined_flag": flag_agreement(scored.flagged, other.flagged),
            "median_std_se_over_threshold": float(se / threshold),
            **_shipped_agreement(card, engine, x, scored, n_samples=n_samples, seed=mc_seed),
        },
        "all_test": group_metrics(y, scored.probability, seed=seed),
        "referral": referral_table(y, scored, seed=seed),
        "decision": decision,
        "shipped_decision": card.get("decision"),
        "shifts": shift.evaluate_synthetic(score_fn, scored, columns, x, spec, seed=seed),
    }
    if recipe is not None:
        report["held_out_under_30"] = shift.heldout_under_30(
            dataset, split, card, recipe=recipe, seed=seed, n_samples=n_samples
        )
    report = _json_safe(report)
    (out_dir / "referral.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    (out_dir / "referral.md").write_text(render_markdown(report))
    return report


def _decision_section(
    card: Mapping[str, Any], engine: MCDropoutEngine, y: np.ndarray, x: np.ndarray,
    y_val: np.ndarray, x_val: np.ndarray, scored: Scored, val: Scored, *, out_dir: Path,
    seed: int,
) -> dict[str, Any]:  # fmt: skip
    """The decision-aware candidate table at the card's action threshold (chosen on validation
    when the card has none), its plot, and the validation decision curve behind the choice."""
    mc = card.get("mc", {})
    n_samples, mc_seed = int(mc.get("n_samples", 256)), int(mc.get("seed", 0))
    test_logits = pass_logits(engine, x, n_samples=n_samples, seed=mc_seed)
    val_logits = pass_logits(engine, x_val, n_samples=n_samples, seed=mc_seed)
    calibration = card.get("calibration")

    def at(logits: np.ndarray, t: float) -> PassScores:
        return pass_scores(logits, calibration, t)

    chosen = choose_action_threshold(y_val, at(val_logits, 0.5).probability)
    threshold = float(card.get("decision", {}).get("action_threshold", chosen["threshold"]))
    test, validation = at(test_logits, threshold), at(val_logits, threshold)
    sensitivity = None
    if threshold != SENSITIVITY_THRESHOLD:
        sensitivity = (
            at(test_logits, SENSITIVITY_THRESHOLD),
            at(val_logits, SENSITIVITY_THRESHOLD),
        )
    section = decision_section(
        y, test, validation, scored.guard, val.guard, threshold,
        sensitivity=sensitivity, seed=seed,
    )  # fmt: skip
    decision_plot(y, test, threshold, out_dir / "decision_curve.png", seed=seed)
    shipped = card.get("decision")
    if shipped:
        level = float(shipped["level"])
        section["shipped_flag_rates"] = {
            "validation": decision_rates(validation.decision_flip, level, val.guard),
            "test": decision_rates(test.decision_flip, level, scored.guard),
        }
    return {**section, "validation_curve": chosen}


def _shipped_agreement(
    card: Mapping[str, Any], engine: MCDropoutEngine, x: np.ndarray, scored: Scored, *,
    n_samples: int, seed: int,
) -> dict[str, Any]:  # fmt: skip
    """How the card's decision rule agrees with itself under MC seeds `seed` and `seed + 1`
    (nothing for a card without a decision block)."""
    decision = card.get("decision")
    if not decision:
        return {}
    a, b = (
        shipped_flags(
            engine, x, decision, card.get("calibration"), scored.guard, n_samples=n_samples,
            seed=s,
        )
        for s in (seed, seed + 1)
    )  # fmt: skip
    return {"shipped_flag": flag_agreement(a, b)}


def mc_scores_se(
    engine: MCDropoutEngine, x: np.ndarray, *, n_samples: int, seed: int
) -> np.ndarray:
    """The Monte Carlo standard error of each std, in row chunks."""
    parts = [
        engine.predict(torch.from_numpy(x[s : s + CHUNK]), n_samples=n_samples, seed=seed)
        .std_standard_error.double()
        .numpy()
        for s in range(0, len(x), CHUNK)
    ]
    return np.concatenate(parts)


def _json_safe(value: Any) -> Any:
    """Replace NaN and infinities (an AUROC of a one-class group) with null."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _ci(group: Mapping[str, Any], key: str) -> str:
    if not group.get("n") or group.get(key) is None:
        return "n/a"
    if None in group[f"{key}_ci"]:
        return f"{group[key]:.3f}"
    lo, hi = group[f"{key}_ci"]
    return f"{group[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def render_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown."""
    rates = report["flag_rates"]
    agree = report["seed_agreement"]
    lines = [
        "# Referral report",
        "",
        f"Test split: {report['n_test']} encounters, N = {report['n_samples']} MC samples, "
        f"std threshold {report['std_threshold']:.4f}, novelty threshold "
        f"{report['novelty_threshold']:.2f}. The tables up to the decision section (and the "
        "shift tests' 'combined') are the former policy: flag when std > threshold or the "
        "domain guard gives any reason; the shipped rule is in the decision section.",
        "",
        "## Flag rates on in-distribution data",
        "",
        "| split | flagged | high_uncertainty | novelty | feature |",
        "|---|---|---|---|---|",
    ]
    for name, r in rates.items():
        lines.append(
            f"| {name} | {r['flagged']:.4f} | {r['high_uncertainty']:.4f} | "
            f"{r['out_of_distribution:novelty']:.4f} | {r['out_of_distribution:feature']:.4f} |"
        )
    lines += [
        "",
        f"## Flag stability (seeds {agree['seeds'][0]} and {agree['seeds'][1]}, same N)",
        "",
        *(
            [
                f"- shipped rule (decision could flip, or the guard): Jaccard "
                f"{agree['shipped_flag']['jaccard']:.3f}, same decision "
                f"{agree['shipped_flag']['same_decision']:.4f}"
            ]
            if "shipped_flag" in agree
            else []
        ),
        f"- std flag: Jaccard {agree['std_flag']['jaccard']:.3f}, same decision "
        f"{agree['std_flag']['same_decision']:.4f}",
        f"- combined flag: Jaccard {agree['combined_flag']['jaccard']:.3f}, same decision "
        f"{agree['combined_flag']['same_decision']:.4f}",
        f"- median MC standard error of the std / threshold: "
        f"{agree['median_std_se_over_threshold']:.3f}",
        "",
        "## Referral (test split; bootstrap 95% intervals)",
        "",
        f"All test encounters: AUROC {_ci(report['all_test'], 'auroc')}, Brier "
        f"{_ci(report['all_test'], 'brier')}, positive rate "
        f"{_ci(report['all_test'], 'positive_rate')}.",
        "",
        "| method | referred | retained AUROC | retained Brier | retained positive rate "
        "| referred AUROC | referred Brier | referred positive rate |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in report["referral"]:
        kept, sent = row["retained"], row["referred"]
        lines.append(
            f"| {row['method']} | {row['fraction']:.0%} | {_ci(kept, 'auroc')} | "
            f"{_ci(kept, 'brier')} | {_ci(kept, 'positive_rate')} | {_ci(sent, 'auroc')} | "
            f"{_ci(sent, 'brier')} | {_ci(sent, 'positive_rate')} |"
        )
    lines += [
        "",
        "![referral curve](referral_curve.png)",
        *render_decision(report["decision"], report.get("shipped_decision") or {}),
        "",
        "## Shift tests (detection AUROC: shifted copies of test encounters vs the originals)",
        "",
        "| shift | combined | std | mutual information | novelty | flagged when shifted |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in report["shifts"].items():
        lines.append(
            f"| {name} | {r['auroc_combined']:.3f} | {r['auroc_std']:.3f} | "
            f"{r['auroc_mutual_information']:.3f} | {r['auroc_novelty']:.3f} | "
            f"{r['flagged_shifted']:.3f} |"
        )
    held = report.get("held_out_under_30")
    if held:
        lines += [
            "",
            "## Held-out population: patients under 30 (model retrained on 30+ only)",
            "",
            f"{held['n_held_out']} under-30 encounters vs {held['n_in_distribution']} test "
            f"encounters aged 30+. Detection AUROC: combined {held['auroc_combined']:.3f}, "
            f"combined without the age check {held['auroc_combined_without_age_check']:.3f}, "
            f"std {held['auroc_std']:.3f}, mutual information "
            f"{held['auroc_mutual_information']:.3f}, novelty {held['auroc_novelty']:.3f}. "
            f"Flagged: {held['flagged_held_out']:.3f} of the under-30s "
            f"({held['flagged_held_out_without_age_check']:.3f} without the age check; "
            f"novelty alone {held['novel_held_out']:.3f}) and "
            f"{held['flagged_in_distribution']:.3f} of the 30+ test encounters.",
            "",
            "The age check fires because the retrained model never saw an age bucket under 30; "
            "the figures without it show what the other checks catch on their own.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- command


def refit_guard(
    card: Mapping[str, Any], model: torch.nn.Module, spec: FeatureSpec, dataset: Dataset,
    split: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """Fit the guard and the combined policy on the card's own split; return the new card."""
    from app.training.policy import fit_policy

    mc = card["mc"]
    n_samples, seed = int(mc["n_samples"]), int(mc["seed"])
    train, val, test = split == 0, split == 1, split == 2
    cols = {
        name: dataset.columns(mask) for name, mask in [("tr", train), ("va", val), ("te", test)]
    }
    xs = {name: spec.encode(c) for name, c in cols.items()}
    guard, uncertainty = fit_policy(
        model, cols["tr"], xs["tr"], cols["va"], xs["va"],
        review_rate=float(card["uncertainty"]["review_rate"]), n_samples=n_samples, seed=seed,
    )  # fmt: skip
    engine = MCDropoutEngine(model, device="cpu", default_seed=seed)
    tested = score(
        engine, guard, cols["te"], xs["te"], calibration=None,
        std_threshold=uncertainty["threshold"], n_samples=n_samples, seed=seed,
    )  # fmt: skip
    uncertainty["data_sha256"] = dataset.sha256
    metrics = dict(card.get("metrics", {}))
    metrics["flag_rate"] = float(tested.flagged.mean())
    metrics["flag_rates_by_reason"] = rates(tested.std, uncertainty["threshold"], tested.guard)
    return {**card, "uncertainty": uncertainty, "domain_guard": guard.to_dict(), "metrics": metrics}


def recipe_from_card(card: Mapping[str, Any]) -> Recipe:
    """The training recipe the card records (the default one when it records none)."""
    saved = dict(card.get("training", {}).get("recipe", {}))
    if "hidden" in saved:
        saved["hidden"] = tuple(saved["hidden"])
    return Recipe(**{k: v for k, v in saved.items() if k in Recipe.__dataclass_fields__})
