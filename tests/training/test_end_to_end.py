"""A tiny real run through the CLI: train, load and verify, evaluate, recalibrate."""

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from app.cli import main
from app.features.columns import DEATH_OR_HOSPICE_DISPOSITIONS
from app.inference import MCDropoutEngine
from app.inference.calibration import calibrate
from app.inference.repository import WEIGHTS_FILE, ModelLoadError, load_model, read_card
from app.training.data import read_frame
from app.training.referral import flag_agreement
from tests.support import held_out_encounters, served_flags_at_two_seeds

ROWS = 3000
EVALUATE_KEYS = {
    "n",
    "positives",
    "auroc",
    "auprc",
    "brier",
    "ece",
    "flag_rate",
    "mc_samples",
    "model_version",
}


@pytest.fixture(scope="module")
def trained(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train a tiny model on the first few thousand real rows, report included."""
    out = tmp_path_factory.mktemp("models") / "tiny"
    argv = ["train", "--data", str(data_file), "--max-rows", str(ROWS), "--epochs", "2"]
    assert main([*argv, "--n-samples", "200", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture(scope="module")
def unseen_file(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Rows the tiny model never saw, written plain and without patient or encounter ids."""
    frame = read_frame(data_file, max_rows=ROWS + 1500).iloc[ROWS:]
    path = tmp_path_factory.mktemp("data") / "unseen.csv"
    frame.drop(columns=["patient_nbr", "encounter_id"]).to_csv(path, index=False, na_rep="?")
    return path


def _evaluate(data: Path, model: Path, *extra: str) -> dict[str, Any]:
    command = [sys.executable, "-m", "app.cli", "evaluate", "--data", str(data)]
    done = subprocess.run(
        [*command, "--model", str(model), *extra], capture_output=True, text=True, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, "stdout must carry exactly one JSON object"
    result: dict[str, Any] = json.loads(lines[0])
    return result


def test_training_writes_weights_card_and_report(trained: Path) -> None:
    names = {p.name for p in trained.iterdir()}
    assert names >= {
        "model.safetensors",
        "model.json",
        "report.md",
        "reliability.png",
        "mc_std.png",
    }
    assert (trained / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    assert "Gradient boosting" in (trained / "report.md").read_text()


def test_card_follows_the_contract(trained: Path) -> None:
    card = read_card(trained)
    assert card["name"] == "readmission" and card["version"] == "tiny"
    assert card["created_at"].endswith("Z")
    assert card["calibration"]["method"] == "platt"
    assert set(card["calibration"]) >= {"a", "b"}
    assert card["calibration"]["fitted_on"] == "validation"
    unc = card["uncertainty"]
    assert unc["measure"] == "std" and unc["review_rate"] == 0.10 and unc["threshold"] > 0
    assert unc["validation_flag_rate"] == pytest.approx(0.10, abs=0.01)
    assert card["mc"] == {"n_samples": 200, "seed": 20261127}
    decision = card["decision"]
    assert decision["measure"] == "decision_flip" and 0 < decision["action_threshold"] < 1
    assert decision["fitted_on"] == "validation" and decision["review_rate"] == 0.10
    assert decision["validation_flag_rate"] == pytest.approx(0.10, abs=0.015)
    data = card["data"]
    assert data["rows"] == ROWS and data["split_seed"] == 20261127
    assert len(data["sha256"]) == 64
    assert sum(data["splits"].values()) + data["excluded_death_hospice"] == ROWS
    for key in ("auroc", "auprc", "brier", "ece", "flag_rate", "flag_rate_at_fixed_0_15"):
        assert 0.0 <= card["metrics"][key] <= 1.0
    assert {"logistic_regression", "gradient_boosting"} <= set(card["metrics"]["models"])


def test_saved_model_round_trips(trained: Path, data_file: Path) -> None:
    loaded = load_model(trained)
    assert loaded.version == "tiny"
    assert loaded.spec.to_dict() == read_card(trained)["feature_spec"]
    frame = read_frame(data_file, max_rows=50)
    columns = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame}
    x = torch.from_numpy(loaded.spec.encode(columns))
    result = MCDropoutEngine(loaded.model, device="cpu").predict(x, n_samples=16, seed=1)
    assert result.mean.shape == (50,) and bool((result.std > 0).all())


def test_tampered_weights_are_refused(trained: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    weights = bytearray((copy / WEIGHTS_FILE).read_bytes())
    weights[-1] ^= 0x01
    (copy / WEIGHTS_FILE).write_bytes(bytes(weights))
    with pytest.raises(ModelLoadError, match="checksum"):
        load_model(copy)


def test_same_seed_gives_the_same_weights(data_file: Path, tmp_path: Path) -> None:
    argv = ["train", "--data", str(data_file), "--max-rows", "1500", "--epochs", "2"]
    argv += ["--no-report", "--no-progress", "--n-samples", "50"]
    cards = []
    for name in ("a", "b"):
        assert main([*argv, "--out", str(tmp_path / name)]) == 0
        cards.append(read_card(tmp_path / name))
    assert cards[0]["weights_sha256"] == cards[1]["weights_sha256"]
    assert cards[0]["metrics"]["auroc"] == cards[1]["metrics"]["auroc"]


def test_evaluate_scores_an_unseen_file_and_prints_one_json(
    trained: Path, unseen_file: Path
) -> None:
    result = _evaluate(unseen_file, trained)
    assert set(result) >= EVALUATE_KEYS
    frame = pd.read_csv(unseen_file, dtype=str, keep_default_na=False)
    deaths = frame["discharge_disposition_id"].astype(int).isin(DEATH_OR_HOSPICE_DISPOSITIONS)
    assert result["excluded_death_hospice"] == int(deaths.sum()) > 0
    assert result["n"] == len(frame) - int(deaths.sum())
    assert result["positives"] == int((frame.loc[~deaths, "readmitted"] == "<30").sum())
    assert result["mc_samples"] == 200 and result["model_version"] == "tiny"
    assert 0.0 <= result["flag_rate"] <= 1.0
    assert 0.3 < result["auroc"] < 0.9 and 0.0 < result["brier"] < 0.25


def test_evaluate_reproduces_the_engine_and_calibration(trained: Path, unseen_file: Path) -> None:
    result = _evaluate(unseen_file, trained, "--n-samples", "64")
    assert result["mc_samples"] == 64
    loaded = load_model(trained)
    frame = read_frame(unseen_file)
    keep = ~frame["discharge_disposition_id"].astype(int).isin(DEATH_OR_HOSPICE_DISPOSITIONS)
    frame = frame[keep.to_numpy()]
    columns = {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in frame}
    engine = MCDropoutEngine(loaded.model, device="cpu")
    mc = engine.predict(
        torch.from_numpy(loaded.spec.encode(columns)), n_samples=64, seed=loaded.card["mc"]["seed"]
    )
    p = calibrate(mc.mean.double().numpy(), loaded.card["calibration"])
    y = (frame["readmitted"] == "<30").to_numpy()
    assert result["brier"] == pytest.approx(float(np.mean((p - y) ** 2)), rel=1e-6)


def test_the_cards_seed_stability_is_that_of_the_rule_the_service_runs(
    trained: Path, data_file: Path
) -> None:
    loaded = load_model(trained)
    encounters, _ = held_out_encounters(data_file, None, trained)
    first, second = served_flags_at_two_seeds(loaded, encounters)
    same = flag_agreement(first, second)["same_decision"]
    assert loaded.card["metrics"]["flag_agreement_two_seeds"] == pytest.approx(same, abs=1e-12)


def test_calibrate_rewrites_the_threshold_without_touching_weights(
    trained: Path, data_file: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "recal"
    shutil.copytree(trained, copy)
    before = read_card(copy)
    # The rows the model was trained on, as a plain file: the same validation patients.
    same_rows = tmp_path / "same.csv"
    read_frame(data_file, max_rows=ROWS).to_csv(same_rows, index=False, na_rep="?")
    argv = ["calibrate", "--data", str(same_rows), "--model", str(copy), "--review-rate", "0.05"]
    assert main(argv) == 0
    after = read_card(copy)
    assert after["uncertainty"]["review_rate"] == 0.05
    assert after["uncertainty"]["threshold"] > before["uncertainty"]["threshold"]
    assert after["uncertainty"]["validation_flag_rate"] == pytest.approx(0.05, abs=0.01)
    # The decision-flip level is what flags on this card: it moves with the budget too.
    decision = after["decision"]
    assert decision["review_rate"] == 0.05 and decision["level"] > before["decision"]["level"]
    assert decision["validation_flag_rate"] == pytest.approx(0.05, abs=0.015)
    assert decision["action_threshold"] == before["decision"]["action_threshold"]
    # Another file than the card's data: the card's test metrics are left as they were.
    for key in ("weights_sha256", "architecture", "feature_spec", "calibration", "mc", "metrics"):
        assert after[key] == before[key], key
    load_model(copy)  # weights still match the card
