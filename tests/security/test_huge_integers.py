"""Ids and cursors beyond what the database can bind are refused with a 4xx, never a 500."""

import base64
import json
import re
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.data

# NOTE: 2**31 is past PostgreSQL's integer ids, 2**63 past what SQLite can bind.
OUT_OF_RANGE = [2**63, 2**64 + 1, 10**30, 2**31, -(2**63) - 1, 0]
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def _cursor(*fields: Any) -> str:
    """A cursor as the API encodes one, holding `fields`."""
    return base64.urlsafe_b64encode(json.dumps(list(fields)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("item_id", OUT_OF_RANGE)
async def test_review_queue_routes_refuse_an_id_out_of_range(client, keys, item_id) -> None:
    clinician, admin = keys["clinician"], keys["admin"]
    answers = [
        await client.get(f"/review-queue/{item_id}", headers=clinician),
        await client.post(f"/review-queue/{item_id}/claim", headers=clinician),
        await client.post(f"/review-queue/{item_id}/release", headers=clinician),
        await client.post(
            f"/review-queue/{item_id}/resolve", json={"outcome": "agree"}, headers=clinician
        ),
        await client.post(
            f"/review-queue/{item_id}/reassign", json={"assignee_key_id": 1}, headers=admin
        ),
    ]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.url, answer.text)
        assert answer.json()["errors"][0]["field"] == "item_id"


@pytest.mark.parametrize("key_id", OUT_OF_RANGE)
async def test_admin_key_routes_refuse_an_id_out_of_range(client, keys, key_id) -> None:
    answers = [
        await client.get(f"/admin/keys/{key_id}", headers=keys["admin"]),
        await client.post(f"/admin/keys/{key_id}/revoke", headers=keys["admin"]),
    ]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.url, answer.text)
        assert answer.json()["errors"][0]["field"] == "key_id"


async def test_a_reassignment_to_a_huge_key_id_is_refused(client, keys) -> None:
    body = {"assignee_key_id": 2**63}
    answer = await client.post("/review-queue/1/reassign", json=body, headers=keys["admin"])
    assert answer.status_code == 422, answer.text


async def test_the_largest_id_is_simply_not_found(client, keys) -> None:
    answer = await client.get(f"/review-queue/{2**31 - 1}", headers=keys["clinician"])
    assert answer.status_code == 404 and "does not exist" in answer.json()["detail"]


FORGED = [
    ("huge id", _cursor("std", 0.1, 2**63)),
    ("negative id", _cursor("std", 0.1, -5)),
    ("id as text", _cursor("std", 0.1, "7")),
    ("huge key", _cursor("std", 10**200, 5)),
    ("id past the column", _cursor("newest", "2026-01-01T00:00:00+00:00", 2**31)),
    ("key as text", _cursor("std", "abc", 5)),
    ("not finite", base64.urlsafe_b64encode(b'["std", NaN, 5]').decode()),
    ("not a date", _cursor("age", "yesterday", 5)),
    ("date without zone", _cursor("age", "2026-01-01T00:00:00", 5)),
    ("date as number", _cursor("newest", 2**70, 5)),
    ("huge number", base64.urlsafe_b64encode(b'["std", 0.1, ' + b"9" * 300 + b"]").decode()),
]


@pytest.mark.parametrize("cursor", [f[1] for f in FORGED], ids=[f[0] for f in FORGED])
async def test_a_forged_cursor_is_a_422_naming_the_cursor(client, keys, cursor) -> None:
    sort = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))[0]
    answer = await client.get(
        "/review-queue", params={"cursor": cursor, "sort": sort}, headers=keys["clinician"]
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith("cursor:")


async def _signed_in(client: httpx.AsyncClient, keys: dict[str, dict[str, str]]) -> str:
    form = await client.get("/review/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    key = keys["clinician"]["Authorization"].split(" ", 1)[1]
    signed = await client.post("/review/sign-in", data={"api_key": key, "csrf_token": token[1]})
    assert signed.status_code == 303
    page = await client.get("/review")
    token = CSRF.search(page.text)
    assert token is not None
    return token[1]


async def test_review_page_refuses_huge_ids_and_forged_cursors(client, keys) -> None:
    csrf = await _signed_in(client, keys)
    origin = {"Origin": "http://triage.test"}
    for item_id in OUT_OF_RANGE[:4]:
        answers = [
            await client.get(f"/review/cases/{item_id}"),
            await client.post(
                f"/review/cases/{item_id}/claim", data={"csrf_token": csrf}, headers=origin
            ),
            await client.post(
                f"/review/cases/{item_id}/resolve",
                data={"csrf_token": csrf, "outcome": "agree"},
                headers=origin,
            ),
        ]
        for answer in answers:
            assert answer.status_code == 422, (answer.request.url, answer.text)
    for path in ("/review", "/review/list"):
        answer = await client.get(path, params={"cursor": _cursor("std", 0.5, 2**63)})
        assert answer.status_code == 422 and "cursor" in answer.text
