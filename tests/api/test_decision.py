"""Answers and review items of a model whose card has a decision block, on both databases."""

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.data

LEVEL = 0.05


@pytest.fixture(scope="module")
def decision_model_dir(
    model_dir: Path, encounters: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The tiny model with a decision block: the action threshold at its median risk."""
    from app.inference.predictor import Predictor, ScoringRequest
    from app.inference.repository import read_card, write_card

    directory = tmp_path_factory.mktemp("decision") / "test-0.1"
    shutil.copytree(model_dir, directory)
    plain = Predictor.load(directory, device="cpu")
    risks = [p.probability for p in plain.predict([ScoringRequest(e, 64) for e in encounters[:60]])]
    card = read_card(directory)
    card["decision"] = {
        "action_threshold": round(float(np.median(risks)), 4), "measure": "decision_flip",
        "level": LEVEL, "review_rate": 0.2, "fitted_on": "validation",
    }  # fmt: skip
    write_card(directory, card)
    return directory


@pytest.fixture
def settings(database_url: str, decision_model_dir: Path) -> Any:
    from app.core.config import Settings

    return Settings(
        database_url=database_url,
        model_dir=decision_model_dir,
        inference={"device": "cpu", "max_batch_delay_us": 500, "threads": 1},
    )


async def test_answers_carry_the_decision_and_flag_when_it_could_flip(
    app, client, keys, encounters, decision_model_dir
) -> None:
    from app.inference.repository import read_card

    threshold = read_card(decision_model_dir)["decision"]["action_threshold"]
    response = await client.post(
        "/predict/batch", json={"encounters": encounters[:60]}, headers=keys["ehr"]
    )
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    scored = [a for a in answers if a["applicable"]]
    for a in scored:
        assert a["action_threshold"] == threshold and a["threshold"] == LEVEL
        assert a["recommended_action"] == ("above" if a["probability"] >= threshold else "below")
        assert 0.0 <= a["decision_flip_probability"] <= 1.0
        uncertain = a["decision_flip_probability"] > LEVEL
        assert ("decision_uncertain" in a["reasons"]) == uncertain
        assert "high_uncertainty" not in a["reasons"]
    flagged = [a for a in scored if "decision_uncertain" in a["reasons"]]
    assert flagged and len(flagged) < len(scored)
    item = await client.get(
        f"/review-queue/{flagged[0]['review_item_id']}", headers=keys["clinician"]
    )
    item = item.json()
    for field in ("action_threshold", "decision_flip_probability", "threshold", "reasons"):
        assert item[field] == flagged[0][field]
    single = await client.post("/predict", json=encounters[0], headers=keys["ehr"])
    assert single.json() == next(
        a for a in answers if a["encounter_id"] == encounters[0]["encounter_id"]
    )
