"""The decision section of the referral report: the candidate table, its plot and its words."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch

from app.features import FeatureSpec
from app.inference.engine import MCDropoutEngine
from app.inference.flags import DECISION_MEASURE
from app.inference.guard import DomainGuard, GuardResult
from app.training.data import SPLITS, Dataset
from app.training.decision import (
    PassScores,
    choose_action_threshold,
    curves,
    decision_table,
    pass_scores,
)
from app.training.policy import fit_decision
from app.training.referral import pass_logits

SENSITIVITY_THRESHOLD: Final = 0.20  # a typical transitional-care programme threshold
LABELS: Final = {
    "std": "std of the probability (old flag)",
    "logit_std": "std of the logit",
    "mutual_information": "mutual information",
    "decision_flip": "decision could flip",
    "closeness": "risk closest to the threshold",
    "random": "random",
    "decision_flip, risk-matched random": "random, matched on risk to 'decision could flip'",
}


def decision_section(
    y: np.ndarray,
    test: PassScores,
    validation: PassScores,
    guard: GuardResult,
    validation_guard: GuardResult,
    threshold: float,
    *,
    sensitivity: tuple[PassScores, PassScores] | None,
    seed: int,
) -> dict[str, Any]:
    """The table at the action threshold and, when given, at the sensitivity threshold."""
    out = decision_table(
        y, test, threshold, validation=validation, guard=guard,
        validation_guard=validation_guard, seed=seed,
    )  # fmt: skip
    if sensitivity is not None:
        out["sensitivity"] = decision_table(
            y, sensitivity[0], SENSITIVITY_THRESHOLD, validation=sensitivity[1], guard=guard,
            validation_guard=validation_guard, fractions=(0.10,), seed=seed,
        )  # fmt: skip
    return out


def decision_plot(
    y: np.ndarray, scores: PassScores, threshold: float, path: Path, *, seed: int
) -> None:
    """Two panels a clinician can read: what the model's own decisions are worth on the cases
    it keeps, and how often the referred cases' decision was wrong, against the share referred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = curves(y, scores, threshold, seed=seed)
    grid = np.asarray(data["grid"]) * 100
    fig, (ax_nb, ax_wrong) = plt.subplots(1, 2, figsize=(12, 5.4))
    for name, values in data["net_benefit"].items():
        style = "--" if "matched" in name else "-"
        ax_nb.plot(grid, values, style, label=LABELS.get(name, name))
    for name, values in data["wrong_share"].items():
        ax_wrong.plot(grid, values, label=LABELS.get(name, name))
    ax_nb.set(
        xlabel="encounters referred to review (%)",
        ylabel="net benefit per retained encounter",
        title=f"Model's decisions on the cases it keeps (act at {threshold:.0%})",
    )
    ax_wrong.set(
        xlabel="encounters referred to review (%)",
        ylabel="share whose model decision was wrong",
        title="Referred cases: model's decision wrong",
    )
    handles, labels = ax_nb.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ci(row: Mapping[str, Any], key: str, digits: int = 4) -> str:
    value, ci = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "n/a"
    if not ci or None in ci:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def _table(rows: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "| flag | kind | referred | retained net benefit | minus risk-matched random "
        "| minus closeness | retained decision accuracy | referred wrong | retained Brier "
        "| retained AUROC |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['kind']} | {r['referred_share']:.1%} | "
            f"{_ci(r, 'retained_net_benefit')} | {_ci(r, 'net_benefit_minus_matched_random')} | "
            f"{_ci(r, 'net_benefit_minus_closeness')} | "
            f"{_ci(r, 'retained_decision_accuracy', 3)} | {_ci(r, 'referred_wrong_share', 3)} | "
            f"{_ci(r, 'retained_brier')} | {_ci(r, 'retained_auroc', 3)} |"
        )
    return lines


def _validation_curve(chosen: Mapping[str, Any] | None) -> list[str]:
    """The validation decision curve at a few thresholds, behind the default's choice."""
    if not chosen:
        return []
    shown = {0.08, 0.10, 0.15, 0.20, 0.25, 0.30, chosen["threshold"]}
    lines = [
        f"Validation decision curve (prevalence {chosen['prevalence']:.3f}); the largest gain "
        f"over acting on everyone or no one is at {chosen['threshold']:.2f}:",
        "",
        "| threshold | model net benefit | act on everyone | gain | share acted on |",
        "|---|---|---|---|---|",
    ]
    for r in chosen["curve"]:
        if r["threshold"] in shown:
            lines.append(
                f"| {r['threshold']:.2f} | {r['net_benefit']:.4f} | {r['treat_all']:.4f} | "
                f"{r['added']:.4f} | {r['acted']:.1%} |"
            )
    return [*lines, ""]


def render_decision(section: Mapping[str, Any], card_decision: Mapping[str, Any]) -> list[str]:
    """The decision section as Markdown lines."""
    t = section["action_threshold"]
    rho = section["spearman_with_risk"]
    lines = [
        "",
        f"## Flags that change a decision (action threshold {t:.2f})",
        "",
        f"Decision: act when the calibrated risk is at or above {t:.2f}; a needless action "
        f"weighs {section['harm_weight']:.3f} of a missed readmission (net benefit, Vickers and "
        f"Elkin). Net benefit with no referral: {section['net_benefit_all_retained']:.4f}. "
        "Net benefit and decision accuracy are per retained case; 'referred wrong' is the "
        "share of referred cases whose model decision was wrong (acted on a case not "
        "readmitted, or did not act on one that was). 'Minus risk-matched random' compares "
        f"with referring as many cases from each of {section['risk_bins']} risk bins at random "
        "(the expectation over draws); 'minus closeness' with referring the same number of "
        "cases whose risk is closest to the threshold (a pure re-ranking by risk). 'ranking' "
        "rows refer the top share by the measure alone; 'policy' rows are the serving rule "
        "(the domain guard's reasons OR the measure above its level fitted on validation at "
        "that budget). Bootstrap 95% intervals, resamples paired across rows.",
        "",
        *_validation_curve(section.get("validation_curve")),
        "Spearman correlation of each measure with the risk: "
        + ", ".join(f"{name} {value:+.3f}" for name, value in rho.items())
        + ".",
        "",
        *_table(section["rows"]),
    ]
    sensitivity = section.get("sensitivity")
    if sensitivity:
        lines += [
            "",
            f"Sensitivity: the same at an action threshold of "
            f"{sensitivity['action_threshold']:.2f} (10% budget; net benefit with no referral "
            f"{sensitivity['net_benefit_all_retained']:.4f}).",
            "",
            *_table(sensitivity["rows"]),
        ]
    shipped_rates = section.get("shipped_flag_rates")
    if shipped_rates:
        lines += ["", "Shipped rule's flag rates:", ""]
        for split, r in shipped_rates.items():
            lines.append(
                f"- {split}: flagged {r['flagged']:.4f}, decision could flip "
                f"{r['decision_uncertain']:.4f}, novelty {r['out_of_distribution:novelty']:.4f}, "
                f"feature {r['out_of_distribution:feature']:.4f}"
            )
    if card_decision:
        lines += [
            "",
            f"Shipped: measure `{card_decision['measure']}` (default `{DECISION_MEASURE}`), "
            f"level {card_decision['level']:.4f} at review rate "
            f"{card_decision['review_rate']:.0%}, action threshold "
            f"{card_decision['action_threshold']:.2f} ({card_decision['threshold_rule']}).",
        ]
    lines += ["", "![decision curves](decision_curve.png)"]
    return lines


# --------------------------------------------------------------------------- command


def fit_decision_card(
    card: Mapping[str, Any], model: torch.nn.Module, spec: FeatureSpec, dataset: Dataset,
    split: np.ndarray, *, action_threshold: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The card with its `decision` block fitted on its own validation split.

    Without `action_threshold`, the threshold is where the model's validation net benefit
    exceeds the better of acting on everyone and on no one by the most.
    """
    mc = card["mc"]
    n_samples, seed = int(mc["n_samples"]), int(mc["seed"])
    validation = split == SPLITS.index("validation")
    columns = dataset.columns(validation)
    x = spec.encode(columns)
    engine = MCDropoutEngine(model, device="cpu", default_seed=seed)
    logits = pass_logits(engine, x, n_samples=n_samples, seed=seed)
    guard = DomainGuard.from_dict(card["domain_guard"], model).check_columns(columns, x)
    decision = fit_decision_block(
        logits, dataset.labels[validation], card.get("calibration"), guard,
        review_rate=float(card["uncertainty"]["review_rate"]), action_threshold=action_threshold,
    )  # fmt: skip
    decision["data_sha256"] = dataset.sha256
    return {**card, "decision": decision}


def fit_decision_block(
    logits: np.ndarray, y: np.ndarray, calibration: Mapping[str, Any] | None,
    guard: GuardResult, *, review_rate: float, action_threshold: float | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The `decision` block from the validation passes' logits, labels and guard results."""
    if action_threshold is None:
        probability = pass_scores(logits, calibration, 0.5).probability
        action_threshold = choose_action_threshold(y, probability)["threshold"]
        rule = THRESHOLD_RULE
    else:
        rule = "stated"
    return fit_decision(
        pass_scores(logits, calibration, action_threshold), guard, review_rate=review_rate,
        action_threshold=action_threshold, threshold_rule=rule,
    )  # fmt: skip


THRESHOLD_RULE: Final = (
    "the validation threshold where the model's net benefit exceeds the better of acting on "
    "everyone and on no one by the most"
)
