"""The review queue over HTTP: claim races, resolve, audit, filters and keyset pagination."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import count_rows

pytestmark = pytest.mark.data


async def _queue(client: Any, keys: dict, encounters: list[dict]) -> list[dict]:
    response = await client.post(
        "/predict/batch", json={"encounters": encounters}, headers=keys["ehr"]
    )
    assert response.status_code == 200, response.text
    return [p for p in response.json()["predictions"] if p["flagged"]]


async def test_claim_then_resolve_with_audit_trail(client, keys, flag_split) -> None:
    [queued] = await _queue(client, keys, flag_split[0][:1])
    item_id = queued["review_item_id"]
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    assert claimed.status_code == 200
    assert (claimed.json()["status"], claimed.json()["assignee"]) == ("in_review", "clinician-test")
    other = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician2"])
    assert other.status_code == 409 and "clinician-test" in other.json()["detail"]
    body = {"outcome": "override", "note": "discussed with the team"}
    stolen = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician2"]
    )
    assert stolen.status_code == 409
    resolved = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert resolved.status_code == 200
    item = resolved.json()
    assert (item["status"], item["outcome"], item["note"]) == ("resolved", *body.values())
    assert item["claimed_at"] and item["resolved_at"]
    trail = [(e["from_status"], e["to_status"], e["actor"]) for e in item["events"]]
    assert trail == [
        (None, "pending", "ehr-test"),
        ("pending", "in_review", "clinician-test"),
        ("in_review", "resolved", "clinician-test"),
    ]
    again = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert again.status_code == 409 and "already resolved" in again.json()["detail"]


async def test_concurrent_claims_have_exactly_one_winner(app, client, keys, flag_split) -> None:
    from app.auth.models import Role
    from app.auth.service import create_key

    [queued] = await _queue(client, keys, flag_split[0][:1])
    with app.state.database.session() as session:
        made = [create_key(session=session, name=f"c{i}", role=Role.CLINICIAN) for i in range(8)]
    clinicians = [{"Authorization": f"Bearer {key}"} for _, key in made]
    url = f"/review-queue/{queued['review_item_id']}/claim"
    responses = await asyncio.gather(*(client.post(url, headers=h) for h in clinicians))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 7
    winner = next(r for r in responses if r.status_code == 200).json()["assignee"]
    item = await client.get(f"/review-queue/{queued['review_item_id']}", headers=keys["clinician"])
    assert item.json()["assignee"] == winner
    assert count_rows(app, "review_events") == 2  # created + one claim


async def test_resolve_needs_a_claim_and_a_known_item(client, keys, flag_split) -> None:
    [queued] = await _queue(client, keys, flag_split[0][:1])
    body = {"outcome": "agree"}
    url = f"/review-queue/{queued['review_item_id']}/resolve"
    assert (await client.post(url, json=body, headers=keys["clinician"])).status_code == 409
    bad = await client.post(url, json={"outcome": "shrug"}, headers=keys["clinician"])
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "outcome"
    assert (await client.get("/review-queue/999999", headers=keys["clinician"])).status_code == 404
    missing = await client.post("/review-queue/999999/claim", headers=keys["clinician"])
    assert missing.status_code == 404


async def test_keyset_pages_cover_the_queue_once(client, keys, flag_split) -> None:
    queued = await _queue(client, keys, flag_split[0][:25])
    orders = (
        ("std", lambda i: (-i["std"], -i["id"])),
        ("newest", lambda i: -i["id"]),
        ("age", lambda i: i["id"]),
    )
    for sort, order in orders:
        seen: list[dict] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 4, "sort": sort}
            if cursor:
                params["cursor"] = cursor
            page = await client.get("/review-queue", params=params, headers=keys["clinician"])
            assert page.status_code == 200, page.text
            seen += page.json()["items"]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(queued) and len({i["id"] for i in seen}) == len(queued)
        assert seen == sorted(seen, key=order)
    wrong = await client.get(
        "/review-queue", params={"sort": "age", "cursor": _first_cursor(await client.get(
            "/review-queue", params={"limit": 1}, headers=keys["clinician"]))},
        headers=keys["clinician"],
    )  # fmt: skip
    assert wrong.status_code == 422
    junk = await client.get("/review-queue", params={"cursor": "!!"}, headers=keys["clinician"])
    assert junk.status_code == 422 and junk.json()["detail"].startswith("cursor")


def _first_cursor(response: Any) -> str:
    cursor = response.json()["next_cursor"]
    assert cursor
    return str(cursor)


async def test_filters(client, keys, flag_split) -> None:
    queued = await _queue(client, keys, flag_split[0][:12])
    first = queued[0]["review_item_id"]
    await client.post(f"/review-queue/{first}/claim", headers=keys["clinician"])
    h = keys["clinician"]

    async def ids(**params: Any) -> set[int]:
        response = await client.get("/review-queue", params=params, headers=h)
        assert response.status_code == 200, response.text
        return {i["id"] for i in response.json()["items"]}

    everything = {q["review_item_id"] for q in queued}
    assert await ids() == everything
    assert await ids(status="in_review") == {first}
    assert await ids(status="pending") == everything - {first}
    median = sorted(q["std"] for q in queued)[6]
    assert await ids(min_std=median) == {q["review_item_id"] for q in queued if q["std"] >= median}
    assert await ids(model_version="other") == set()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await ids(since=future) == set() and await ids(since=past) == everything
    bad = await client.get("/review-queue", params={"status": "lost"}, headers=h)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
