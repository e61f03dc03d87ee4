"""`POST /predict` and `/predict/batch` on real encounters, on SQLite and PostgreSQL."""

import asyncio
from typing import Any

import pytest

from tests.conftest import count_rows

pytestmark = pytest.mark.data


async def test_predict_answers_with_the_model_card_defaults(client, keys, flag_split) -> None:
    _, calm = flag_split
    response = await client.post("/predict", json=calm[0], headers=keys["ehr"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "encounter_id", "applicable", "reason", "probability", "std", "band_low", "band_high",
        "action_threshold", "recommended_action", "decision_flip_probability",
        "flagged", "reasons", "threshold", "n_samples", "seed", "model_version", "review_item_id",
    }  # fmt: skip
    # The tiny model's card has no decision block and no setting gives a threshold.
    assert body["action_threshold"] is body["recommended_action"] is None
    assert body["applicable"] is True and body["reason"] is None
    assert 0.0 <= body["band_low"] <= body["band_high"] <= 1.0
    assert body["encounter_id"] == calm[0]["encounter_id"]
    assert 0.0 < body["probability"] < 1.0 and body["std"] >= 0.0
    assert body["flagged"] is False and body["reasons"] == [] and body["review_item_id"] is None
    assert (body["n_samples"], body["seed"], body["model_version"]) == (64, 7, "test-0.1")
    again = await client.post("/predict", json=calm[0], headers=keys["ehr"])
    assert again.json() == body  # deterministic: the same answer on a retry


async def test_answers_match_their_documented_models(app, client, keys, flag_split) -> None:
    from app.api.schemas import BatchOut, PredictionOut

    flagged, calm = flag_split
    single = await client.post("/predict", json=flagged[0], headers=keys["ehr"])
    assert PredictionOut.model_validate_json(single.content).model_dump() == single.json()
    batch = {"encounters": [calm[1], flagged[1]]}
    answer = await client.post("/predict/batch", json=batch, headers=keys["ehr"])
    assert BatchOut.model_validate_json(answer.content).model_dump() == answer.json()
    assert answer.headers["content-type"] == "application/json"
    paths = app.openapi()["paths"]
    for path, model in (("/predict", "PredictionOut"), ("/predict/batch", "BatchOut")):
        documented = paths[path]["post"]["responses"]["200"]["content"]["application/json"]
        assert documented["schema"]["$ref"].endswith(model)


async def test_request_may_choose_samples_and_seed(client, keys, encounters) -> None:
    params = {"n_samples": 200, "seed": 99}
    response = await client.post("/predict", json=encounters[0], params=params, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    assert (response.json()["n_samples"], response.json()["seed"]) == (200, 99)


async def test_flagged_case_is_queued_with_the_encounter_as_received(
    app, client, keys, flag_split
) -> None:
    encounter = dict(flag_split[0][0])
    encounter["weight"] = None  # sent as null: stored as null
    encounter.pop("payer_code", None)  # absent: stays absent
    response = await client.post("/predict", json=encounter, headers=keys["ehr"])
    body = response.json()
    assert response.status_code == 200 and body["flagged"] is True
    assert body["reasons"] == ["high_uncertainty"] and body["std"] > body["threshold"]
    item = await client.get(f"/review-queue/{body['review_item_id']}", headers=keys["clinician"])
    item = item.json()
    assert item["encounter"] == encounter
    assert item["status"] == "pending" and item["assignee"] is None
    fields = ("probability", "std", "band_low", "band_high", "threshold", "n_samples", "seed")
    for field in (*fields, "model_version"):
        assert item[field] == body[field]
    assert item["band_low"] < item["band_high"]  # a flagged case's passes disagree
    assert item["reasons"] == ["high_uncertainty"]
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in item["events"]] == [
        (None, "pending", "ehr-test")
    ]
    assert count_rows(app, "review_items") == 1


async def test_retry_returns_the_same_item(app, client, keys, flag_split) -> None:
    encounter = flag_split[0][0]
    first = await client.post("/predict", json=encounter, headers=keys["ehr"])
    second = await client.post("/predict", json=encounter, headers=keys["ehr"])
    assert first.json()["review_item_id"] == second.json()["review_item_id"] is not None
    assert count_rows(app, "review_items") == 1
    assert count_rows(app, "review_events") == 1


async def test_concurrent_duplicates_make_one_item(app, client, keys, flag_split) -> None:
    encounter = flag_split[0][1]
    responses = await asyncio.gather(
        *(client.post("/predict", json=encounter, headers=keys["ehr"]) for _ in range(12))
    )
    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["review_item_id"] for r in responses}) == 1
    assert count_rows(app, "review_items") == 1
    assert count_rows(app, "review_events") == 1


async def test_the_same_flagged_encounter_twice_in_a_batch_makes_one_item(
    app, client, keys, flag_split
) -> None:
    encounter = flag_split[0][2]
    batch = {"encounters": [encounter, flag_split[0][3], encounter]}
    response = await client.post("/predict/batch", json=batch, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    first, other, again = response.json()["predictions"]
    assert first["review_item_id"] == again["review_item_id"] is not None
    assert other["review_item_id"] not in (None, first["review_item_id"])
    assert count_rows(app, "review_items") == 2
    assert count_rows(app, "review_events") == 2


async def test_batch_answers_in_order_and_matches_single_predictions(
    app, client, keys, encounters, settings
) -> None:
    # NOTE: above `inline_max_items`, so the batch is scored on a worker thread and the
    # single encounters on the event loop.
    batch = encounters[: settings.inference.inline_max_items + 36]
    response = await client.post("/predict/batch", json={"encounters": batch}, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["encounter_id"] for p in predictions] == [e["encounter_id"] for e in batch]
    for k in (5, len(batch) - 1):
        single = (await client.post("/predict", json=batch[k], headers=keys["ehr"])).json()
        assert predictions[k] == single  # independent of the batch it was scored in
    flagged = [p for p in predictions if p["flagged"]]
    assert all(p["review_item_id"] is not None for p in flagged)
    assert count_rows(app, "review_items") == len(flagged)


async def test_one_invalid_encounter_rejects_the_batch_and_stores_nothing(
    app, client, keys, flag_split
) -> None:
    flagged, _ = flag_split
    batch: list[dict[str, Any]] = [dict(e) for e in flagged[:10]]
    batch[7]["age"] = "[100-110)"
    response = await client.post("/predict/batch", json={"encounters": batch}, headers=keys["ehr"])
    assert response.status_code == 422
    body = response.json()
    assert body["index"] == 7 and body["errors"][0]["field"] == "encounters[7].age"
    assert count_rows(app, "review_items") == 0


async def test_batch_over_the_limit_is_refused(app, client, keys, encounters) -> None:
    app.state.settings.max_batch_encounters = 5
    batch = {"encounters": encounters[:6]}
    response = await client.post("/predict/batch", json=batch, headers=keys["ehr"])
    assert response.status_code == 422 and "at most 5" in response.json()["detail"]
    assert count_rows(app, "review_items") == 0
