"""A clinician's own risk estimate when resolving a case: optional, a probability, audited."""

from typing import Any

import pytest

pytestmark = pytest.mark.data


async def _claimed(client: Any, keys: dict, encounter: dict) -> int:
    response = await client.post("/predict", json=encounter, headers=keys["ehr"])
    assert response.status_code == 200 and response.json()["flagged"], response.text
    item_id = int(response.json()["review_item_id"])
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    assert claimed.status_code == 200
    return item_id


async def test_resolve_records_the_clinicians_estimate(client, keys, flag_split) -> None:
    item_id = await _claimed(client, keys, flag_split[0][0])
    body = {"outcome": "override", "clinician_risk": 0.35}
    resolved = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["clinician_risk"] == 0.35
    last = resolved.json()["events"][-1]
    assert last["to_status"] == "resolved"
    assert last["detail"] == {"outcome": "override", "clinician_risk": 0.35}
    read = await client.get(f"/review-queue/{item_id}", headers=keys["admin"])
    assert read.json()["clinician_risk"] == 0.35


async def test_the_estimate_is_optional(client, keys, flag_split) -> None:
    item_id = await _claimed(client, keys, flag_split[0][1])
    resolved = await client.post(
        f"/review-queue/{item_id}/resolve", json={"outcome": "agree"}, headers=keys["clinician"]
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["clinician_risk"] is None
    assert resolved.json()["events"][-1]["detail"] == {"outcome": "agree"}


@pytest.mark.parametrize("bad", [1.5, -0.1, "high", "0.3", True])
async def test_a_value_that_is_not_a_probability_is_refused(client, keys, flag_split, bad) -> None:
    item_id = await _claimed(client, keys, flag_split[0][2])
    body = {"outcome": "agree", "clinician_risk": bad}
    refused = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json()["errors"]] == ["clinician_risk"]
    assert refused.json()["detail"].startswith("clinician_risk: ")
    still = await client.get(f"/review-queue/{item_id}", headers=keys["clinician"])
    assert still.json()["status"] == "in_review" and still.json()["clinician_risk"] is None
