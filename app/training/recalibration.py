"""Recalibration from outcomes: a new model version whose Platt calibration and review threshold
are refitted on the matured outcomes of the encounters a version scored, with the same weights.

A version folder is never overwritten: the new one is written beside it under a new name, so
serving it is a restart with `TRIAGE_MODEL_DIR` pointing at it.
"""

import argparse
import json
import logging
import shutil
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np

from app.core.errors import AppError
from app.inference.calibration import calibrate
from app.inference.repository import (
    CARD_FILE,
    WEIGHTS_FILE,
    LoadedModel,
    ModelLoadError,
    load_model,
    resolve_model_dir,
    sha256_file,
    write_card,
)
from app.outcomes.matured import MaturedOutcomes
from app.training.calibration import fit_platt
from app.training.metrics import auroc, brier, calibration_intercept, calibration_slope, ece
from app.training.policy import fit_std_threshold

MIN_OUTCOMES = 500  # NOTE: below this a refitted slope is mostly noise (and the alerts)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


def figures(readmitted: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    """The figures a calibration is judged by, on one set of outcomes."""
    return {
        "auroc": auroc(readmitted, probability),
        "brier": brier(readmitted, probability),
        "ece": ece(readmitted, probability),
        "calibration_intercept": calibration_intercept(readmitted, probability),
        "calibration_slope": calibration_slope(readmitted, probability),
        "observed_rate": float(np.mean(readmitted)),
        "predicted_rate": float(np.mean(probability)),
    }


def recalibrated_card(
    loaded: LoadedModel,
    outcomes: MaturedOutcomes,
    *,
    version: str,
    review_rate: float | None = None,
    source: str,
) -> dict[str, Any]:
    """The card of `loaded` with calibration and threshold refitted on `outcomes`."""
    y = np.asarray(outcomes.readmitted, dtype=np.int64)
    n = len(y)
    if n < MIN_OUTCOMES:
        raise ValueError(
            f"{n} matured outcomes for model {loaded.version} since"
            f" {outcomes.since or 'the start'}; at least {MIN_OUTCOMES} are needed"
            " to refit a calibration (post more to POST /outcomes)"
        )
    if y.min() == y.max():
        raise ValueError("the matured outcomes are all one value; a calibration needs both")
    card = dict(loaded.card)
    uncertainty = dict(card["uncertainty"])
    rate = float(review_rate if review_rate is not None else uncertainty["review_rate"])
    calibration = {
        **fit_platt(outcomes.raw_probability, y),
        "fitted_on": "outcomes",
        "outcomes": n,
        "since": _iso(outcomes.since),
        "until": _iso(outcomes.until),
    }
    threshold = fit_std_threshold(outcomes.std, outcomes.guard_flagged, rate)
    uncertainty.update(
        threshold=threshold,
        review_rate=rate,
        fitted_on="outcomes",
        outcome_flag_rate=float(
            (np.asarray(outcomes.guard_flagged) | (np.asarray(outcomes.std) > threshold)).mean()
        ),
    )
    before = calibrate(outcomes.raw_probability, card.get("calibration"))
    after = calibrate(outcomes.raw_probability, calibration)
    card.update(
        version=version,
        created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        calibration=calibration,
        uncertainty=uncertainty,
        recalibration={
            "from_version": loaded.version,
            "source": source,
            "outcomes": n,
            "readmitted": int(y.sum()),
            "since": _iso(outcomes.since),
            "until": _iso(outcomes.until),
            # NOTE: in-sample: both are measured on the outcomes the new calibration was fitted on.
            "before": figures(y, before),
            "after": figures(y, after),
            "threshold_before": float(loaded.card["uncertainty"]["threshold"]),
        },
    )
    if "decision" in card:
        # NOTE: the flip share depends on the calibration through the action's logit cut, and
        # the passes behind it are not stored, so its level cannot be refitted from outcomes.
        card["recalibration"]["decision_level"] = (
            "kept as fitted on validation: refit it with `triage report-referral --fit-decision"
            " --data PATH` on data, since the stored scores do not hold the dropout passes"
        )
    return card


def new_version_name(loaded: LoadedModel, today: date) -> str:
    """A version name that sorts after the one it came from and is not taken yet."""
    base = f"{loaded.version}-recal{today:%Y%m%d}"
    name, k = base, 1
    while (loaded.directory.parent / name).exists():
        k += 1
        name = f"{base}.{k}"
    return name


def write_version(loaded: LoadedModel, card: Mapping[str, Any]) -> Path:
    """Write the new version beside the old one: the same weights, byte for byte, a new card."""
    directory = loaded.directory.parent / str(card["version"])
    directory.mkdir()  # NOTE: raises if it exists: a version is never overwritten
    shutil.copyfile(loaded.directory / WEIGHTS_FILE, directory / WEIGHTS_FILE)
    if sha256_file(directory / WEIGHTS_FILE) != card["weights_sha256"]:
        shutil.rmtree(directory)
        raise RuntimeError(f"copied weights do not match the card's sha256 in {directory}")
    write_card(directory, card)
    assert (directory / CARD_FILE).is_file()
    return directory


def calibrate_from_db(args: argparse.Namespace) -> int:
    """`triage calibrate --from-db`: refit on the database's matured outcomes of the served (or
    `--model`) version into a new version folder; print its folder and figures as JSON."""
    from app.core.config import Settings
    from app.db.session import Database
    from app.outcomes.matured import matured_outcomes  # NOTE: the database only on this path

    log = logging.getLogger("app.training")
    settings = Settings()
    try:
        loaded = load_model(
            resolve_model_dir(args.model or settings.model_dir, settings.model_repository)
        )
    except ModelLoadError as exc:
        log.error("%s", exc)
        return 2
    database = Database(settings.database_url, timeout_s=settings.database_timeout_s)
    try:
        with database.connect() as connection:
            outcomes = matured_outcomes(connection, loaded.version, args.since)
        today = datetime.now(UTC).date()
        card = recalibrated_card(
            loaded,
            outcomes,
            version=new_version_name(loaded, today),
            review_rate=args.review_rate,
            source=f"outcomes in the service database ({database.engine.dialect.name})",
        )
    except (ValueError, AppError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        database.dispose()
    directory = write_version(loaded, card)
    log.info("wrote %s; serve it with TRIAGE_MODEL_DIR=%s", card["version"], directory)
    print(json.dumps({"model_dir": str(directory), **card["recalibration"]}))
    return 0
