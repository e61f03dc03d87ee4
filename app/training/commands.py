"""Handlers of `triage train`, `triage evaluate` and `triage calibrate` (argparse Namespace in)."""

import argparse
import json
import logging
import math
import sys
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from app.inference.calibration import calibrate as apply_calibration
from app.inference.calibration import logit_cut, share_acting
from app.inference.flags import decision_flip, flagged
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
from app.training.decision_report import fit_decision_card
from app.training.evaluation import MCScores, mc_scores
from app.training.metrics import auprc, auroc, brier, ece
from app.training.pipeline import DEFAULT_N_SAMPLES, TrainOptions, run_training
from app.training.policy import decision_rates, fit_std_threshold, fit_thresholds
from app.training.referral import flag_agreement
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
    scores = mc_scores(
        loaded.model, x, n_samples=n_samples, seed=int(mc["seed"]), cut=_cut(loaded.card)
    )
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
        "flag_rate": None if empty else float(_flagged(loaded, dataset, x, scores).mean()),
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
    scores = mc_scores(
        loaded.model, x, n_samples=int(mc["n_samples"]), seed=int(mc["seed"]), cut=_cut(card)
    )
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
    if "decision" in card:
        # NOTE: the decision-flip level is what flags on such a card; it moves with the budget.
        card["decision"] = _refit_decision_level(
            loaded, card, dataset, x, scores, validation, args.review_rate
        )
    test = split == SPLITS.index("test")
    test_rate = None
    if test.any():
        loaded = replace(loaded, card=card)
        flags = _flagged(loaded, dataset, x, scores, test)
        test_rate = float(flags.mean())
        # NOTE: the rule's stability under the next MC seed moves with its level, as the rate does.
        n, seed = int(mc["n_samples"]), int(mc["seed"]) + 1
        reseeded = mc_scores(loaded.model, x, n_samples=n, seed=seed, cut=_cut(card))
        again = _flagged(loaded, dataset, x, reseeded, test)
        agreement = flag_agreement(flags, again)["same_decision"]
    if dataset.sha256 == card["data"]["sha256"] and test_rate is not None:
        # NOTE: the card's test metrics stay true only when the threshold came from the same data.
        card["metrics"] = {
            **card["metrics"], "flag_rate": test_rate, "flag_agreement_two_seeds": agreement,
        }  # fmt: skip
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
    scores: MCScores,
    rows: np.ndarray | None = None,
) -> np.ndarray:
    """The card's flag decisions: its measure (the decision-flip share, or the std for a card
    without a decision block) above its level, or any domain-guard reason."""
    rows = np.ones(len(x), dtype=bool) if rows is None else rows
    checked = None
    if "domain_guard" in loaded.card:
        guard = DomainGuard.from_dict(loaded.card["domain_guard"], loaded.model)
        checked = guard.check_columns(dataset.columns(rows), x[rows])
    decision = loaded.card.get("decision")
    if decision is None:
        return flagged(scores.std[rows], float(loaded.card["uncertainty"]["threshold"]), checked)
    return flagged(_flip(loaded.card, scores)[rows], float(decision["level"]), checked)


def _cut(card: Mapping[str, Any]) -> float | None:
    """The logit cut of the card's action threshold; None without a decision block."""
    decision = card.get("decision")
    if decision is None:
        return None
    return logit_cut(float(decision["action_threshold"]), card.get("calibration"))


def _flip(card: Mapping[str, Any], scores: MCScores) -> np.ndarray:
    """Each encounter's share of passes on the other side of the card's action threshold."""
    assert scores.share_above is not None
    probability = apply_calibration(scores.mean, card.get("calibration"))
    threshold = float(card["decision"]["action_threshold"])
    acting = share_acting(scores.share_above, card.get("calibration"))
    return decision_flip(probability, acting, threshold, scores.n_samples)


def _refit_decision_level(
    loaded: LoadedModel, card: Mapping[str, Any], dataset: Dataset, x: np.ndarray,
    scores: MCScores, validation: np.ndarray, review_rate: float,
) -> dict[str, Any]:  # fmt: skip
    """The card's decision block with its level refitted on validation at `review_rate`."""
    guard = DomainGuard.from_dict(card["domain_guard"], loaded.model)
    checked = guard.check_columns(dataset.columns(validation), x[validation])
    flip = _flip(card, scores)[validation]
    level = fit_std_threshold(flip, checked.flagged, review_rate)
    return {
        **card["decision"], "level": level, "review_rate": review_rate,
        "validation_flag_rate": float(flagged(flip, level, checked).mean()),
        "validation_rates": decision_rates(flip, level, checked),
        "data_sha256": dataset.sha256,
    }  # fmt: skip


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
    action_threshold = getattr(args, "action_threshold", None)
    if getattr(args, "fit_decision", False) or action_threshold is not None:
        if dataset.sha256 != card["data"]["sha256"]:
            log.error("the decision is fitted on the model's validation split; this file differs")
            return 2
        if action_threshold is not None and not 0.0 < action_threshold < 1.0:
            log.error("--action-threshold must be strictly between 0 and 1")
            return 2
        card = fit_decision_card(
            card, loaded.model, loaded.spec, dataset, split, action_threshold=action_threshold
        )
        write_card(loaded.directory, card)
        log.info("wrote the decision block into %s", loaded.directory)
    out = args.out or loaded.directory
    out.mkdir(parents=True, exist_ok=True)
    recipe = None if args.no_retrain else recipe_from_card(card)
    report = build_report(
        dataset=dataset, split=split, model=loaded.model, spec=loaded.spec, card=card,
        out_dir=out, recipe=recipe, seed=int(card["mc"]["seed"]),
    )  # fmt: skip
    shipped = report["decision"].get("shipped_flag_rates")
    if shipped and dataset.sha256 == card["data"]["sha256"] and out == loaded.directory:
        # NOTE: the card's test flag rate is the shipped rule's, as serving flags.
        card["metrics"] = {**card["metrics"], "flag_rate": shipped["test"]["flagged"]}
        write_card(loaded.directory, card)
    summary = {
        "model_version": loaded.version,
        "flag_rates": report["flag_rates"],
        "seed_agreement": report["seed_agreement"],
        "decision": card.get("decision"),
        "shifts": {k: v["auroc_combined"] for k, v in report["shifts"].items()},
        "held_out_under_30": report.get("held_out_under_30"),
        "report": str(out / "referral.md"),
    }
    print(json.dumps(summary))
    return 0
