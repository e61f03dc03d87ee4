"""`triage calibrate --from-db`: encounters scored through the service, their outcomes posted,
then a new model version refitted on them, on SQLite and PostgreSQL; the old one untouched."""

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.cli import main
from app.inference.calibration import calibrate
from app.inference.predictor import Predictor, ScoringRequest
from app.inference.repository import CARD_FILE, WEIGHTS_FILE, load_model, sha256_file

pytestmark = pytest.mark.data

DISCHARGED = (datetime.now(UTC).date() - timedelta(days=60)).isoformat()
N = 1500


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


async def _score_and_report(client, keys, encounters: list[dict[str, Any]]) -> np.ndarray:
    """Score the encounters through the API and post outcomes that the model under-predicts:
    drawn from sigmoid(0.5 logit(p) + 1), so a refit must move the calibration."""
    answers = []
    for start in range(0, len(encounters), 500):
        sent = [{**e, "discharge_date": DISCHARGED} for e in encounters[start : start + 500]]
        response = await client.post(
            "/predict/batch", json={"encounters": sent}, headers=keys["ehr"]
        )
        assert response.status_code == 200, response.text
        answers += [a for a in response.json()["predictions"] if a["applicable"]]
    p = np.array([a["probability"] for a in answers])
    truth = 1.0 / (1.0 + np.exp(-(0.5 * _logit(p) + 1.0)))
    readmitted = np.random.default_rng(5).random(len(p)) < truth
    rows = [
        {"encounter_id": a["encounter_id"], "readmitted": bool(r)}
        for a, r in zip(answers, readmitted, strict=True)
    ]
    for start in range(0, len(rows), 500):
        batch = {"outcomes": rows[start : start + 500]}
        posted = await client.post("/outcomes", json=batch, headers=keys["ehr"])
        assert posted.status_code == 200, posted.text
    return readmitted


@pytest.fixture
def cli_database(monkeypatch: pytest.MonkeyPatch, database_url: str, model_dir: Path) -> Path:
    """The command reads the service's settings: the same database, the test model."""
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database_url)
    monkeypatch.setenv("TRIAGE_MODEL_DIR", str(model_dir))
    before = set(model_dir.parent.iterdir())
    yield model_dir
    for made in set(model_dir.parent.iterdir()) - before:
        shutil.rmtree(made)


async def test_a_new_version_is_refitted_on_outcomes_with_the_same_weights(
    app, client, keys, encounters, cli_database, capsys
):
    model_dir = cli_database
    old_card = (model_dir / CARD_FILE).read_text()
    readmitted = await _score_and_report(client, keys, encounters[:N])

    assert main(["calibrate", "--from-db"]) == 0
    result = json.loads(capsys.readouterr().out)
    new_dir = Path(result["model_dir"])
    assert new_dir.parent == model_dir.parent and new_dir != model_dir
    assert (model_dir / CARD_FILE).read_text() == old_card  # never overwritten
    assert sha256_file(new_dir / WEIGHTS_FILE) == sha256_file(model_dir / WEIGHTS_FILE)

    new = load_model(new_dir)  # loads: the card's checksum matches the copied weights
    card = new.card
    assert card["version"] == new_dir.name and card["version"].startswith("test-0.1-recal")
    assert card["calibration"]["fitted_on"] == "outcomes"
    assert card["calibration"]["outcomes"] == len(readmitted) == result["outcomes"]
    assert result["readmitted"] == int(readmitted.sum())
    before, after = result["before"], result["after"]
    # the outcomes were drawn under-predicted: the refit moves the predicted rate onto the
    # observed one (a maximum-likelihood logistic fit with an intercept matches the mean)
    assert before["predicted_rate"] < before["observed_rate"] - 0.05
    assert after["predicted_rate"] == pytest.approx(after["observed_rate"], abs=1e-4)
    assert after["brier"] < before["brier"] and after["ece"] < before["ece"]
    assert abs(after["calibration_intercept"]) < 0.05
    assert after["calibration_slope"] == pytest.approx(1.0, abs=0.05)

    # the new version serves the refitted calibration on the same passes
    old_predictor = Predictor.load(model_dir, device="cpu")
    new_predictor = Predictor.load(new_dir, device="cpu")
    sample = encounters[:20]
    old = old_predictor.predict([ScoringRequest(e, 64, 7) for e in sample])
    fresh = new_predictor.predict([ScoringRequest(e, 64, 7) for e in sample])
    assert [o.std for o in old] == [f.std for f in fresh]  # same weights, same passes
    raw = np.array([o.raw_probability for o in old])
    assert [f.raw_probability for f in fresh] == raw.tolist()
    assert np.array_equal([f.probability for f in fresh], calibrate(raw, card["calibration"]))
    assert not np.allclose([o.probability for o in old], [f.probability for f in fresh])
    assert new_predictor.threshold == card["uncertainty"]["threshold"]
    assert new_predictor.model_version == card["version"]


async def test_too_few_outcomes_write_nothing(app, client, keys, encounters, cli_database):
    model_dir = cli_database
    await _score_and_report(client, keys, encounters[:50])
    folders = set(model_dir.parent.iterdir())
    assert main(["calibrate", "--from-db"]) == 2
    assert set(model_dir.parent.iterdir()) == folders


def test_data_and_from_db_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as raised:
        main(["calibrate", "--from-db", "--data", "x.csv"])
    assert raised.value.code == 2
