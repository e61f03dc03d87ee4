"""A resubmitted encounter over HTTP: a changed version supersedes the open item, a retry of
the same content finds its item, two versions in one batch are refused (issue 23)."""

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from app.review.models import ReviewItem
from tests.conftest import count_rows

pytestmark = pytest.mark.data

ENCOUNTER = "enc-resubmitted"


def _version(encounter: dict[str, Any]) -> dict[str, Any]:
    return {**encounter, "encounter_id": ENCOUNTER}


async def _predict(client: Any, keys: dict, encounter: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/predict", json=encounter, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    return response.json()


async def _item(client: Any, keys: dict, item_id: int) -> dict[str, Any]:
    response = await client.get(f"/review-queue/{item_id}", headers=keys["clinician"])
    assert response.status_code == 200, response.text
    return response.json()


async def _listed(client: Any, keys: dict, status: str | None = None) -> list[int]:
    params = {"status": status} if status else {}
    response = await client.get("/review-queue", params=params, headers=keys["clinician"])
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


def _open_items(app: Any, encounter_id: str) -> int:
    query = select(func.count()).where(
        ReviewItem.encounter_id == encounter_id,
        ReviewItem.status.in_(["pending", "in_review"]),
    )
    with app.state.database.session() as session:
        return int(session.scalar(query) or 0)


async def test_a_corrected_encounter_supersedes_the_stale_item(client, keys, flag_split) -> None:
    flagged, calm = flag_split
    first = await _predict(client, keys, _version(flagged[0]))
    second = await _predict(client, keys, _version(flagged[1]))
    assert first["flagged"] and second["flagged"]
    assert second["review_item_id"] not in (None, first["review_item_id"])
    stale = await _item(client, keys, first["review_item_id"])
    assert stale["status"] == "superseded"
    assert stale["probability"] == first["probability"]  # history kept as it was
    last = stale["events"][-1]
    assert (last["from_status"], last["to_status"], last["actor"]) == (
        "pending",
        "superseded",
        "ehr-test",
    )
    assert last["detail"]["item_id"] == second["review_item_id"]
    current = await _item(client, keys, second["review_item_id"])
    assert (current["status"], current["probability"]) == ("pending", second["probability"])

    unflagged = await _predict(client, keys, _version(calm[0]))
    assert not unflagged["flagged"] and unflagged["review_item_id"] is None
    replaced = await _item(client, keys, second["review_item_id"])
    assert replaced["status"] == "superseded"
    assert replaced["events"][-1]["detail"]["item_id"] is None
    pending = await _listed(client, keys, "pending")
    assert first["review_item_id"] not in pending and second["review_item_id"] not in pending
    assert set(await _listed(client, keys, "superseded")) == {
        first["review_item_id"],
        second["review_item_id"],
    }
    assert second["review_item_id"] not in await _listed(client, keys)


async def test_an_unflagged_retry_of_calm_content_writes_nothing(app, client, keys, flag_split):
    calm = _version(flag_split[1][0])
    for _ in range(2):
        assert (await _predict(client, keys, calm))["review_item_id"] is None
    assert count_rows(app, "review_items") == 0 and count_rows(app, "review_events") == 0


async def test_an_identical_retry_finds_its_item_whatever_its_status(
    app, client, keys, flag_split
) -> None:
    encounter = _version(flag_split[0][0])
    item_id = (await _predict(client, keys, encounter))["review_item_id"]
    assert (await _predict(client, keys, encounter))["review_item_id"] == item_id
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    assert claimed.status_code == 200
    body = {"outcome": "agree", "note": None}
    resolved = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert resolved.status_code == 200
    assert (await _predict(client, keys, encounter))["review_item_id"] == item_id
    batch = await client.post(
        "/predict/batch", json={"encounters": [encounter, encounter]}, headers=keys["ehr"]
    )
    assert batch.status_code == 200, batch.text
    assert [p["review_item_id"] for p in batch.json()["predictions"]] == [item_id, item_id]
    assert (await _item(client, keys, item_id))["status"] == "resolved"
    assert count_rows(app, "review_items") == 1


async def test_two_versions_in_one_batch_are_refused(app, client, keys, flag_split) -> None:
    flagged = flag_split[0]
    encounters = [flagged[5], _version(flagged[0]), _version(flagged[1])]
    response = await client.post(
        "/predict/batch", json={"encounters": encounters}, headers=keys["ehr"]
    )
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "encounters[1]" in detail and "encounters[2]" in detail and ENCOUNTER in detail
    assert count_rows(app, "review_items") == 0


async def test_claim_and_resolve_of_a_superseded_item_answer_409(client, keys, flag_split):
    flagged, calm = flag_split
    first = (await _predict(client, keys, _version(flagged[0])))["review_item_id"]
    claimed = await client.post(f"/review-queue/{first}/claim", headers=keys["clinician"])
    assert claimed.status_code == 200
    second = (await _predict(client, keys, _version(flagged[1])))["review_item_id"]
    stale = await _item(client, keys, first)
    assert stale["status"] == "superseded"
    assert stale["events"][-1]["from_status"] == "in_review"
    body = {"outcome": "agree", "note": None}
    resolve = await client.post(
        f"/review-queue/{first}/resolve", json=body, headers=keys["clinician"]
    )
    assert resolve.status_code == 409
    assert resolve.json()["detail"] == f"review item {first} is superseded by item {second}"
    claim = await client.post(f"/review-queue/{first}/claim", headers=keys["clinician2"])
    assert claim.status_code == 409 and f"superseded by item {second}" in claim.json()["detail"]

    await _predict(client, keys, _version(calm[0]))
    claim = await client.post(f"/review-queue/{second}/claim", headers=keys["clinician"])
    assert claim.status_code == 409
    assert "superseded by a later unflagged version" in claim.json()["detail"]


async def test_concurrent_versions_never_leave_two_open_items(app, client, keys, flag_split):
    versions = [_version(e) for e in flag_split[0][:8]]
    answers = await asyncio.gather(
        *[client.post("/predict", json=v, headers=keys["ehr"]) for v in versions]
    )
    # NOTE: a version that lost every round to its rivals answers 503 "retry shortly"; the EHR
    # retries it (as Retry-After says), and no retry may leave a second open item.
    answers = [
        a if a.status_code != 503 else await client.post("/predict", json=v, headers=keys["ehr"])
        for a, v in zip(answers, versions, strict=True)
    ]
    assert [a.status_code for a in answers] == [200] * len(versions)
    ids = {a.json()["review_item_id"] for a in answers}
    assert len(ids) == len(versions) and None not in ids
    assert _open_items(app, ENCOUNTER) == 1
    statuses = [(await _item(client, keys, i))["status"] for i in sorted(ids)]
    assert sorted(statuses) == ["pending"] + ["superseded"] * (len(versions) - 1)
