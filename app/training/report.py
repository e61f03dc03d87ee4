"""The training report next to the model: a Markdown summary and two small PNG figures."""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from app.training.metrics import ECE_BINS, reliability

REPORT_FILE: Final = "report.md"
RELIABILITY_PNG: Final = "reliability.png"
STD_PNG: Final = "mc_std.png"
FIXED_THRESHOLD: Final = 0.15

MODEL_LABELS: Final = {
    "mlp_mc_mean": "MLP, MC-mean, calibrated",
    "mlp_mc_mean_uncalibrated": "MLP, MC-mean, uncalibrated",
    "mlp_deterministic": "MLP, deterministic (dropout off)",
    "logistic_regression": "Logistic regression",
    "gradient_boosting": "Gradient boosting",
}


@dataclass(frozen=True)
class ReportInputs:
    """Everything the report shows, already computed."""

    card: Mapping[str, Any]
    y_test: np.ndarray
    probabilities: Mapping[str, np.ndarray]
    std_validation: np.ndarray
    std_test: np.ndarray
    history: Mapping[str, Any]


def write_report(directory: Path, inputs: ReportInputs) -> list[Path]:
    """Write the Markdown summary and figures into `directory`; return the paths written."""
    paths = [
        _reliability_figure(directory / RELIABILITY_PNG, inputs),
        _std_figure(directory / STD_PNG, inputs),
    ]
    markdown = directory / REPORT_FILE
    markdown.write_text(_markdown(inputs))
    return [markdown, *paths]


def _reliability_figure(path: Path, inputs: ReportInputs) -> Path:
    fig, ax = plt.subplots(figsize=(5.0, 4.2), dpi=100)
    top = 0.0
    for name in ("mlp_mc_mean", "mlp_mc_mean_uncalibrated", "gradient_boosting"):
        if name not in inputs.probabilities:
            continue
        confidence, observed, counts = reliability(inputs.y_test, inputs.probabilities[name])
        used = counts >= 20
        ax.plot(confidence[used], observed[used], marker="o", ms=3, label=MODEL_LABELS[name])
        top = max(top, float(np.nanmax(confidence[used], initial=0.0)))
        top = max(top, float(np.nanmax(observed[used], initial=0.0)))
    top = min(1.0, max(0.2, top * 1.05))
    ax.plot([0, top], [0, top], color="grey", lw=0.8, ls="--", label="perfect calibration")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability")
    ax.set(ylabel="observed readmission rate")
    ax.set_title(f"Reliability on the test split ({ECE_BINS} bins, bins with >= 20 rows)", size=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _std_figure(path: Path, inputs: ReportInputs) -> Path:
    uncertainty = inputs.card["uncertainty"]
    fig, ax = plt.subplots(figsize=(5.0, 3.6), dpi=100)
    high = max(float(np.quantile(inputs.std_test, 0.999)), uncertainty["threshold"]) * 1.2
    bins = np.linspace(0.0, max(high, 1e-6), 60).tolist()
    ax.hist(inputs.std_validation, bins=bins, alpha=0.6, label="validation")
    ax.hist(inputs.std_test, bins=bins, alpha=0.6, label="test")
    ax.axvline(uncertainty["threshold"], color="crimson", lw=1.2, label="card threshold")
    ax.set(xlabel="MC std of the readmission probability", ylabel="encounters")
    ax.set_title(
        f"MC-dropout std (N = {inputs.card['mc']['n_samples']}); the fixed "
        f"{FIXED_THRESHOLD} is off this scale",
        size=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _markdown(inputs: ReportInputs) -> str:
    card = inputs.card
    metrics = card["metrics"]
    models = metrics["models"]
    unc = card["uncertainty"]
    data = card["data"]
    arch = card.get("architecture", {})
    training = card["training"]
    lines = [
        f"# Readmission model {card['version']}",
        "",
        f'Created {card["created_at"]}. 30-day readmission (`readmitted == "<30"`), '
        f"test split: {metrics['n']} encounters, {metrics['positives']} readmitted.",
        "",
        "## Test-split metrics",
        "",
        "| model | AUROC | 95% CI (bootstrap) | AUPRC | Brier | ECE (15 bins) |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in MODEL_LABELS.items():
        if name not in models:
            continue
        m = models[name]
        ci = f"{_fmt(m['auroc_ci_low'])} – {_fmt(m['auroc_ci_high'])}"
        lines.append(
            f"| {label} | {_fmt(m['auroc'])} | {ci} | {_fmt(m['auprc'])} | "
            f"{_fmt(m['brier'])} | {_fmt(m['ece'])} |"
        )
    lines += ["", "The service reports the calibrated MC-mean (Platt scaling fit on validation)."]
    lines += ["Baselines are fitted on the same split and encoding and are not recalibrated.", ""]
    if metrics.get("targets"):
        lines += ["## Targets", "", "| target | value | met |", "|---|---|---|"]
        for target in metrics["targets"]:
            met = "yes" if target["met"] else "**no**"
            lines.append(f"| {target['name']} | {target['value']} | {met} |")
        lines.append("")
    lines += [
        "## Uncertainty and review",
        "",
        f"- MC dropout: N = {card['mc']['n_samples']} subnetworks, seed {card['mc']['seed']}, "
        f"dropout p = {arch.get('p')}.",
        f"- Flag policy: {unc.get('policy', 'flag when std > threshold')}; the MC-std "
        f"threshold {unc['threshold']:.5f} is fitted on validation so the policy flags "
        f"{unc['review_rate']:.0%} (validation flag rate {unc['validation_flag_rate']:.2%}, "
        f"test flag rate {metrics['flag_rate']:.2%}).",
        f"- MC std on test: median {np.median(inputs.std_test):.4f}, 99th percentile "
        f"{np.quantile(inputs.std_test, 0.99):.4f}, max {np.max(inputs.std_test):.4f}.",
        f"- The popular fixed threshold {FIXED_THRESHOLD} flags "
        f"{metrics['flag_rate_at_fixed_0_15']:.2%} of test encounters: essentially nothing.",
    ]
    if "flag_agreement_two_seeds" in metrics:
        lines.append(
            f"- Monte Carlo stability: the shipped flag rule makes the same decision for "
            f"{metrics['flag_agreement_two_seeds']:.2%} of test encounters under two MC seeds."
        )
    lines += [
        "",
        f"![reliability]({RELIABILITY_PNG})",
        f"![MC std]({STD_PNG})",
        "",
        "## Data and training",
        "",
        f"- Data sha256 `{data['sha256']}`: {data['rows']} rows read, "
        f"{data['excluded_death_hospice']} death/hospice encounters excluded.",
        f"- Patient-level split (seed {data['split_seed']}): "
        + ", ".join(f"{k} {v}" for k, v in data["splits"].items())
        + " encounters.",
        f"- Architecture: {arch.get('in_features')} features -> hidden {arch.get('hidden')} "
        f"-> 1, dropout p = {arch.get('p')}.",
        f"- Recipe: {training['recipe']}.",
        f"- Best epoch {training['best_epoch'] + 1} of {training['epochs_run']} "
        f"(early stopping on validation AUROC); training took {training['seconds']:.1f} s "
        f"on {training['recipe']['threads']} threads.",
        "- Validation AUROC per epoch: "
        + ", ".join(f"{v:.4f}" for v in inputs.history.get("val_auroc", [])),
        "",
    ]
    return "\n".join(lines)
