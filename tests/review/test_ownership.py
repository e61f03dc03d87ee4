"""Cases are owned and audited by key id: keys called alike stay apart; release and reassign."""

import asyncio
import secrets
from typing import Any

import pytest

from tests.conftest import count_rows

pytestmark = pytest.mark.data


def _old_key(app: Any, name: str, role: str = "clinician") -> tuple[int, dict[str, str]]:
    """A key stored as the service did before names were checked (a duplicate may exist)."""
    from app.auth.models import ApiKey
    from app.auth.service import KEY_SCHEME, hash_key

    prefix = secrets.token_hex(6)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    with app.state.database.session() as session:
        row = ApiKey(name=name, role=role, prefix=prefix, key_hash=hash_key(key))
        session.add(row)
        session.commit()
        return row.id, {"Authorization": f"Bearer {key}"}


def _clinicians(app: Any, count: int) -> list[tuple[int, dict[str, str]]]:
    from app.auth.models import Role
    from app.auth.service import create_key

    made = []
    with app.state.database.session() as session:
        for i in range(count):
            row, key = create_key(session=session, name=f"locum {i}", role=Role.CLINICIAN)
            made.append((row.id, {"Authorization": f"Bearer {key}"}))
    return made


async def _flag(client: Any, keys: dict, encounter: dict) -> int:
    response = await client.post("/predict", json=encounter, headers=keys["ehr"])
    assert response.status_code == 200 and response.json()["flagged"], response.text
    return int(response.json()["review_item_id"])


async def test_a_namesake_key_cannot_resolve_or_release_anothers_claim(
    app, client, keys, flag_split
) -> None:
    first_id, first = _old_key(app, "Dr Sam Lee")
    second_id, second = _old_key(app, "Dr Sam Lee")
    item_id = await _flag(client, keys, flag_split[0][0])
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=first)
    assert claimed.status_code == 200
    assert (claimed.json()["assignee"], claimed.json()["assignee_key_id"]) == (
        "Dr Sam Lee",
        first_id,
    )
    body = {"outcome": "agree"}
    stolen = await client.post(f"/review-queue/{item_id}/resolve", json=body, headers=second)
    assert stolen.status_code == 409
    assert f"already claimed by Dr Sam Lee (key #{first_id})" in stolen.json()["detail"]
    assert (await client.post(f"/review-queue/{item_id}/claim", headers=second)).status_code == 409
    assert (
        await client.post(f"/review-queue/{item_id}/release", headers=second)
    ).status_code == 409
    resolved = await client.post(f"/review-queue/{item_id}/resolve", json=body, headers=first)
    assert resolved.status_code == 200
    trail = [(e["to_status"], e["actor"], e["actor_key_id"]) for e in resolved.json()["events"]]
    ehr_id = trail[0][2]
    assert trail == [
        ("pending", "ehr-test", ehr_id),
        ("in_review", "Dr Sam Lee", first_id),
        ("resolved", "Dr Sam Lee", first_id),
    ]
    assert isinstance(ehr_id, int) and ehr_id not in (first_id, second_id)


async def test_the_holder_releases_a_case_for_anyone_to_claim(client, keys, flag_split) -> None:
    item_id = await _flag(client, keys, flag_split[0][0])
    url = f"/review-queue/{item_id}"
    pending = await client.post(f"{url}/release", headers=keys["clinician"])
    assert pending.status_code == 409 and "nothing to release" in pending.json()["detail"]
    await client.post(f"{url}/claim", headers=keys["clinician"])
    released = await client.post(f"{url}/release", headers=keys["clinician"])
    assert released.status_code == 200
    item = released.json()
    assert (item["status"], item["assignee"], item["assignee_key_id"]) == ("pending", None, None)
    assert item["claimed_at"] is None
    last = item["events"][-1]
    holder = (await client.get("/admin/keys", headers=keys["admin"])).json()
    holder_id = next(k["id"] for k in holder if k["name"] == "clinician-test")
    assert (last["from_status"], last["to_status"], last["actor"], last["actor_key_id"]) == (
        "in_review",
        "pending",
        "clinician-test",
        holder_id,
    )
    taken = await client.post(f"{url}/claim", headers=keys["clinician2"])
    assert taken.status_code == 200 and taken.json()["assignee"] == "clinician2-test"
    body = {"outcome": "agree"}
    assert (
        await client.post(f"{url}/resolve", json=body, headers=keys["clinician"])
    ).status_code == 409
    assert (
        await client.post(f"{url}/resolve", json=body, headers=keys["clinician2"])
    ).status_code == 200
    done = await client.post(f"{url}/release", headers=keys["clinician2"])
    assert done.status_code == 409 and "already resolved" in done.json()["detail"]


async def test_an_admin_reassigns_a_case_in_review(app, client, keys, flag_split) -> None:
    [(locum_id, locum)] = _clinicians(app, 1)
    item_id = await _flag(client, keys, flag_split[0][0])
    url = f"/review-queue/{item_id}"
    to_locum = {"assignee_key_id": locum_id}
    assert (
        await client.post(f"{url}/reassign", json=to_locum, headers=keys["admin"])
    ).status_code == 409
    claimed = (await client.post(f"{url}/claim", headers=keys["clinician"])).json()
    holder_id = claimed["assignee_key_id"]
    for other in ("ehr", "clinician"):
        refused = await client.post(f"{url}/reassign", json=to_locum, headers=keys[other])
        assert refused.status_code == 403
    moved = await client.post(f"{url}/reassign", json=to_locum, headers=keys["admin"])
    assert moved.status_code == 200, moved.text
    item = moved.json()
    assert (item["status"], item["assignee"], item["assignee_key_id"]) == (
        "in_review",
        "locum 0",
        locum_id,
    )
    event = item["events"][-1]
    assert (event["from_status"], event["to_status"], event["actor"]) == (
        "in_review",
        "in_review",
        "admin-test",
    )
    assert event["detail"] == {
        "from_key_id": holder_id,
        "from": f"clinician-test (key #{holder_id})",
        "to_key_id": locum_id,
        "to": f"locum 0 (key #{locum_id})",
    }
    retried = await client.post(f"{url}/reassign", json=to_locum, headers=keys["admin"])
    assert retried.status_code == 200 and len(retried.json()["events"]) == len(item["events"])
    body = {"outcome": "agree"}
    old = await client.post(f"{url}/resolve", json=body, headers=keys["clinician"])
    assert old.status_code == 409
    assert (await client.post(f"{url}/resolve", json=body, headers=locum)).status_code == 200
    late = await client.post(f"{url}/reassign", json=to_locum, headers=keys["admin"])
    assert late.status_code == 409 and "already resolved" in late.json()["detail"]


async def test_reassign_refuses_a_bad_target_key(app, client, keys, flag_split) -> None:
    from app.auth.service import Actor, revoke_key

    [(gone_id, _), (live_id, _)] = _clinicians(app, 2)
    with app.state.database.session() as session:
        revoke_key(session=session, key_id=gone_id, actor=Actor("test"))
    listed = (await client.get("/admin/keys", headers=keys["admin"])).json()
    ehr_id = next(k["id"] for k in listed if k["role"] == "ehr")
    item_id = await _flag(client, keys, flag_split[0][0])
    url = f"/review-queue/{item_id}/reassign"
    await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])

    async def reassign(body: Any) -> Any:
        return await client.post(url, json=body, headers=keys["admin"])

    unknown = await reassign({"assignee_key_id": 999_999})
    assert unknown.status_code == 404 and "#999999" in unknown.json()["detail"]
    revoked = await reassign({"assignee_key_id": gone_id})
    assert revoked.status_code == 422 and "revoked" in revoked.json()["detail"]
    wrong_role = await reassign({"assignee_key_id": ehr_id})
    assert wrong_role.status_code == 422 and "clinician" in wrong_role.json()["detail"]
    for junk in (
        {},
        {"assignee_key_id": "x"},
        {"assignee_key_id": 0},
        {"assignee_key_id": 1, "x": 1},
    ):
        assert (await reassign(junk)).status_code == 422, junk
    missing = await client.post(
        "/review-queue/999999/reassign", json={"assignee_key_id": live_id}, headers=keys["admin"]
    )
    assert missing.status_code == 404
    item = (await client.get(f"/review-queue/{item_id}", headers=keys["admin"])).json()
    assert item["assignee"] == "clinician-test" and len(item["events"]) == 2


async def test_concurrent_reassignments_lose_no_update(app, client, keys, flag_split) -> None:
    """Racing reassignments and a release: every loser gets 409 and the history is one chain.

    NOTE: a reassignment that starts after another has committed is a fresh, valid move
    (the case is still in review), so more than one may win; none may overwrite a change it
    did not see, which is what the chain of from/to key ids below checks.
    """
    targets = _clinicians(app, 6)
    item_id = await _flag(client, keys, flag_split[0][0])
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    holder_id = claimed.json()["assignee_key_id"]
    url = f"/review-queue/{item_id}/reassign"
    answers = await asyncio.gather(
        *(
            client.post(url, json={"assignee_key_id": key_id}, headers=keys["admin"])
            for key_id, _ in targets
        ),
        client.post(f"/review-queue/{item_id}/release", headers=keys["clinician"]),
    )
    codes = [a.status_code for a in answers]
    assert set(codes) <= {200, 409} and 200 in codes, codes
    item = (await client.get(f"/review-queue/{item_id}", headers=keys["admin"])).json()
    changes = item["events"][2:]  # after queued and claimed
    assert len(changes) == codes.count(200)
    current: int | None = holder_id
    for event in changes:
        if event["to_status"] == "pending":
            assert event["actor_key_id"] == current == holder_id  # only the holder releases
            current = None
        else:
            assert event["detail"]["from_key_id"] == current is not None
            current = event["detail"]["to_key_id"]
    assert item["assignee_key_id"] == current
    assert item["status"] == ("pending" if current is None else "in_review")


async def test_concurrent_releases_and_claims_stay_consistent(
    app, client, keys, flag_split
) -> None:
    """The holder releases while others try to claim: every claim that wins follows a release."""
    rivals = _clinicians(app, 4)
    item_id = await _flag(client, keys, flag_split[0][0])
    url = f"/review-queue/{item_id}"
    await client.post(f"{url}/claim", headers=keys["clinician"])
    answers = await asyncio.gather(
        client.post(f"{url}/release", headers=keys["clinician"]),
        *(client.post(f"{url}/claim", headers=h) for _, h in rivals),
    )
    assert answers[0].status_code == 200
    wins = [a for a in answers[1:] if a.status_code == 200]
    assert len(wins) <= 1 and all(a.status_code == 409 for a in answers[1:] if a not in wins)
    item = (await client.get(url, headers=keys["admin"])).json()
    changes = [(e["from_status"], e["to_status"]) for e in item["events"]]
    assert changes[:3] == [(None, "pending"), ("pending", "in_review"), ("in_review", "pending")]
    assert len(changes) == 3 + len(wins)
    assert count_rows(app, "review_events") == len(changes)
