"""Handlers of `triage train`, `triage evaluate` and `triage calibrate` (argparse Namespace in)."""

import argparse
import json
import logging
import math
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.inference.calibration import calibrate as apply_calibration
from app.inference.flags import flagged
from app.inference.guard import DomainGuard
from app.inference.repository import (
    DEFAULT_REPOSITORY,
    LoadedModel,
    ModelLoadError,
    latest_version_dir,
    load_model,
    write_card,
)
from app.training.calibration import fit_threshold
from app.training.data import SPLITS, Dataset, load_dataset, split_assignment
from app.training.evaluation import mc_scores
from app.training.metrics import auprc, auroc, brier, ece
from app.training.pipeline import DEFAULT_N_SAMPLES, TrainOptions, run_training
from app.training.policy import fit_thresholds
from app.training.referral_report import build_report, recipe_from_card, refit_guard
from app.training.train import reproducible

log = logging.getLogger("app.training")


def _setup_logging() -> None:
    # NOTE: logs and progress go to stderr; stdout carries only the machine-readable result.
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _threads(args: argparse.Namespace) -> int:
    return max(1, int(getattr(args, "threads", None) or 1))


def _load(directory: Path | None) -> LoadedModel:
    return load_model(directory or latest_version_dir(DEFAULT_REPOSITORY))


def train(args: argparse.Namespace) -> int:
    """Train a model version from a data file and print its folder."""
    _setup_logging()
    options = TrainOptions(
        data=args.data,
        out=args.out,
        seed=args.seed,
        max_rows=args.max_rows,
        epochs=args.epochs,
        review_rate=args.review_rate,
        report=not args.no_report,
        n_samples=getattr(args, "n_samples", None) or DEFAULT_N_SAMPLES,
        threads=_threads(args),
        progress=not getattr(args, "no_progress", False),
    )
    out, card = run_training(options)
    m = card["metrics"]
    log.info(
        "test: AUROC %.4f, Brier %.4f, ECE %.4f, flag rate %.2f%%",
        m["auroc"], m["brier"], m["ece"], 100 * m["flag_rate"],
    )  # fmt: skip
    print(out)
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Score every usable encounter of a file and print one JSON object of metrics."""
    _setup_logging()
    with reproducible(0, _threads(args)):
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    try:
        loaded = _load(args.model)
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 2
    dataset = load_dataset(args.data)
    log.info(
        "%s: %d rows, %d death/hospice skipped, %d unlabelled skipped, %d scored",
        args.data, dataset.rows_read, dataset.excluded_death_hospice,
        dataset.excluded_unlabelled, len(dataset),
    )  # fmt: skip
    mc = loaded.card["mc"]
    n_samples = int(args.n_samples or mc["n_samples"])
    x = loaded.spec.encode(dataset.columns())
    scores = mc_scores(loaded.model, x, n_samples=n_samples, seed=int(mc["seed"]))
    p = apply_calibration(scores.mean, loaded.card.get("calibration"))
    y = dataset.labels
    empty = len(y) == 0
    result: dict[str, Any] = {
        "n": len(y),
        "positives": int(y.sum()),
        "auroc": _finite(auroc(y, p)),
        "auprc": _finite(auprc(y, p)),
        "brier": None if empty else brier(y, p),
        "ece": None if empty else _finite(ece(y, p)),
        "flag_rate": None if empty else float(_flagged(loaded, dataset, x, scores.std).mean()),
        "mc_samples": n_samples,
        "model_version": loaded.version,
        "excluded_death_hospice": dataset.excluded_death_hospice,
        "excluded_unlabelled": dataset.excluded_unlabelled,
    }
    print(json.dumps(result))
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """Re-derive the uncertainty threshold on the validation split, or (`--from-db`) refit the
    calibration and threshold on matured outcomes into a new version; never retrains."""
    _setup_logging()
    if args.from_db:
        from app.training.recalibration import calibrate_from_db

        return calibrate_from_db(args)
    if args.since is not None:
        log.error("--since goes with --from-db")
        return 2
    if args.review_rate is None:
        log.error("--review-rate is required with --data")
        return 2
    with reproducible(0, _threads(args)):
        return _calibrate(args)


def _model_and_split(
    args: argparse.Namespace,
) -> tuple[LoadedModel, dict[str, Any], Dataset, np.ndarray] | None:
    """Load the model and the data with the card's patient split; None (logged) if unloadable."""
    try:
        loaded = _load(args.model)
    except ModelLoadError as exc:
        log.error("%s", exc)
        return None
    card = dict(loaded.card)
    dataset = load_dataset(args.data)
    return loaded, card, dataset, split_assignment(dataset.frame, int(card["data"]["split_seed"]))


def _calibrate(args: argparse.Namespace) -> int:
    opened = _model_and_split(args)
    if opened is None:
        return 2
    loaded, card, dataset, split = opened
    x = loaded.spec.encode(dataset.columns())
    mc = card["mc"]
    scores = mc_scores(loaded.model, x, n_samples=int(mc["n_samples"]), seed=int(mc["seed"]))
    validation = split == SPLITS.index("validation")
    try:
        if "domain_guard" in card:
            # NOTE: the guard stays as trained; the std flag gets what it leaves of the budget.
            _, uncertainty = fit_thresholds(
                DomainGuard.from_dict(card["domain_guard"], loaded.model),
                scores.std[validation], dataset.columns(validation), x[validation],
                review_rate=args.review_rate, novelty_share=None,
            )  # fmt: skip
        else:
            uncertainty = fit_threshold(scores.std[validation], args.review_rate)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    uncertainty["data_sha256"] = dataset.sha256
    card["uncertainty"] = uncertainty
    test = split == SPLITS.index("test")
    test_rate = None
    if test.any():
        loaded = replace(loaded, card=card)
        test_rate = float(_flagged(loaded, dataset, x, scores.std, test).mean())
    if dataset.sha256 == card["data"]["sha256"] and test_rate is not None:
        # NOTE: the card's test metrics stay true only when the threshold came from the same data.
        card["metrics"] = {**card["metrics"], "flag_rate": test_rate}
    write_card(loaded.directory, card)
    log.info(
        "threshold %.5f flags %.2f%% of validation, %s of test",
        uncertainty["threshold"], 100 * uncertainty["validation_flag_rate"],
        "n/a" if test_rate is None else f"{100 * test_rate:.2f}%",
    )  # fmt: skip
    print(json.dumps({"model_version": loaded.version, **uncertainty, "test_flag_rate": test_rate}))
    return 0


def _flagged(
    loaded: LoadedModel,
    dataset: Dataset,
    x: np.ndarray,
    std: np.ndarray,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """The card's flag decisions: std above its threshold, or any domain-guard reason."""
    rows = np.ones(len(x), dtype=bool) if rows is None else rows
    checked = None
    if "domain_guard" in loaded.card:
        guard = DomainGuard.from_dict(loaded.card["domain_guard"], loaded.model)
        checked = guard.check_columns(dataset.columns(rows), x[rows])
    return flagged(std[rows], float(loaded.card["uncertainty"]["threshold"]), checked)


def report_referral(args: argparse.Namespace) -> int:
    """Fit the guard into the card if asked, then write the referral and shift report."""
    _setup_logging()
    opened = _model_and_split(args)
    if opened is None:
        return 2
    loaded, card, dataset, split = opened
    if args.refit_guard or "domain_guard" not in card:
        if dataset.sha256 != card["data"]["sha256"]:
            log.error("the guard is fitted on the model's own training data; this file differs")
            return 2
        card = refit_guard(card, loaded.model, loaded.spec, dataset, split)
        write_card(loaded.directory, card)
        log.info("wrote the domain guard and the combined policy into %s", loaded.directory)
    out = args.out or loaded.directory
    out.mkdir(parents=True, exist_ok=True)
    recipe = None if args.no_retrain else recipe_from_card(card)
    report = build_report(
        dataset=dataset, split=split, model=loaded.model, spec=loaded.spec, card=card,
        out_dir=out, recipe=recipe, seed=int(card["mc"]["seed"]),
    )  # fmt: skip
    summary = {
        "model_version": loaded.version,
        "flag_rates": report["flag_rates"],
        "seed_agreement": report["seed_agreement"],
        "shifts": {k: v["auroc_combined"] for k, v in report["shifts"].items()},
        "held_out_under_30": report.get("held_out_under_30"),
        "report": str(out / "referral.md"),
    }
    print(json.dumps(summary))
    return 0
