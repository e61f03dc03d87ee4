"""Hostile bodies: oversized, deeply nested, huge numbers, wrong types, SQL and HTML payloads."""

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.conftest import count_rows

pytestmark = pytest.mark.data

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
SQL = [
    "1'; DROP TABLE review_items; --",
    "' OR '1'='1",
    'x") ON CONFLICT DO NOTHING; SELECT pg_sleep(10); --',
    "Robert'); DELETE FROM api_keys WHERE ('1'='1",
]


def _problem(response: Any) -> str:
    """The 4xx body's message; every refusal must name what was wrong."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    detail = response.json()["detail"]
    assert detail and isinstance(detail, str | list)
    return json.dumps(detail)


async def test_streamed_body_over_the_limit_is_refused(app, client, keys) -> None:
    """No Content-Length (chunked): the middleware counts bytes as they arrive."""
    limit = app.state.settings.max_body_bytes

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"encounters": ['
        for _ in range(limit // 1000 + 10):
            yield b'{"encounter_id": "' + b"x" * 960 + b'"},'
        yield b"{}]}"

    response = await client.post(
        "/predict/batch",
        content=chunks(),
        headers={**keys["ehr"], "Content-Type": "application/json"},
    )
    assert response.status_code == 413 and "too large" in _problem(response)
    assert count_rows(app, "review_items") == 0


@pytest.mark.parametrize("depth", [64, 5_000, 100_000])
async def test_deeply_nested_json_is_a_4xx(client, keys, encounters, depth) -> None:
    nested = "[" * depth + "]" * depth
    body = json.dumps(encounters[0])[:-1] + f', "race": {nested}}}'
    response = await client.post(
        "/predict", content=body, headers={**keys["ehr"], "Content-Type": "application/json"}
    )
    _problem(response)


@pytest.mark.parametrize(
    "literal", ["1e400", "-1e400", "1" * 5000, "-" + "9" * 4400, "1e-400", "123456789" * 3]
)
async def test_huge_numbers_are_a_4xx(app, client, keys, encounters, literal) -> None:
    body = json.dumps(encounters[0])[:-1] + f', "num_medications": {literal}}}'
    # NOTE: the body is edited textually, so "num_medications" now appears twice; JSON keeps
    # the last one, which is the hostile value.
    response = await client.post(
        "/predict", content=body, headers={**keys["ehr"], "Content-Type": "application/json"}
    )
    _problem(response)
    assert count_rows(app, "review_items") == 0


async def test_huge_query_numbers_are_a_4xx(client, keys, encounters) -> None:
    for params in ({"seed": "9" * 5000}, {"n_samples": "1e400"}, {"seed": "-1"}):
        response = await client.post(
            "/predict", json=encounters[0], params=params, headers=keys["ehr"]
        )
        assert response.status_code == 422 and _problem(response)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
async def test_wrong_content_types_are_refused_with_a_message(
    app, client, keys, encounters, content_type
) -> None:
    body = json.dumps(encounters[0]).encode()
    response = await client.post(
        "/predict", content=body, headers={**keys["ehr"], "Content-Type": content_type}
    )
    assert response.status_code in (415, 422), (content_type, response.status_code)
    assert _problem(response)
    assert count_rows(app, "review_items") == 0


@pytest.mark.parametrize("text", SQL)
async def test_sql_looking_strings_are_stored_verbatim(client, keys, flag_split, text) -> None:
    flagged, _ = flag_split
    sent = {**flagged[0], "encounter_id": text}
    answer = await client.post("/predict", json=sent, headers=keys["ehr"])
    assert answer.status_code == 200 and answer.json()["encounter_id"] == text
    item_id = answer.json()["review_item_id"]
    assert item_id is not None
    read = await client.get(f"/review-queue/{item_id}", headers=keys["clinician"])
    assert read.json()["encounter_id"] == text and read.json()["encounter"] == sent
    claim = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    assert claim.status_code == 200
    resolve = await client.post(
        f"/review-queue/{item_id}/resolve",
        json={"outcome": "agree", "note": text},
        headers=keys["clinician"],
    )
    assert resolve.status_code == 200, resolve.text
    read = await client.get(f"/review-queue/{item_id}", headers=keys["clinician"])
    assert read.json()["note"] == text
    # The tables are intact and the key still works.
    listing = await client.get("/review-queue", headers=keys["clinician"])
    assert listing.status_code == 200 and len(listing.json()["items"]) == 1


@pytest.mark.parametrize("text", ["nul\x00byte", "tab\there", "bell\x07", "line\nbreak"])
async def test_control_characters_never_cause_a_5xx(app, client, keys, flag_split, text) -> None:
    """PostgreSQL cannot store NUL in text: the API must refuse it, not fail storing it."""
    flagged, _ = flag_split
    answer = await client.post(
        "/predict", json={**flagged[0], "encounter_id": text}, headers=keys["ehr"]
    )
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert "encounter_id" in _problem(answer)
        return
    item_id = answer.json()["review_item_id"]
    await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    resolve = await client.post(
        f"/review-queue/{item_id}/resolve",
        json={"outcome": "agree", "note": f"note {text}"},
        headers=keys["clinician"],
    )
    assert resolve.status_code in (200, 422), resolve.text


async def test_html_in_ids_and_notes_is_escaped_on_the_review_page(
    client, keys, flag_split
) -> None:
    flagged, _ = flag_split
    hostile_id = '<img src=x onerror="alert(1)">'
    answer = await client.post(
        "/predict", json={**flagged[0], "encounter_id": hostile_id}, headers=keys["ehr"]
    )
    item_id = answer.json()["review_item_id"]
    await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    note = '</textarea><script>fetch("/review-queue")</script>'
    resolved = await client.post(
        f"/review-queue/{item_id}/resolve",
        json={"outcome": "override", "note": note},
        headers=keys["clinician"],
    )
    assert resolved.status_code == 200, resolved.text
    form = await client.get("/review/sign-in")
    key = keys["clinician"]["Authorization"].split(" ", 1)[1]
    token = CSRF.search(form.text)
    assert token is not None
    signed_in = await client.post(
        "/review/sign-in", data={"api_key": key, "csrf_token": token.group(1)}
    )
    assert signed_in.status_code in (200, 303)
    pages = [
        await client.get(f"/review/cases/{item_id}"),
        await client.get("/review?status=resolved"),
    ]
    for page in pages:
        assert page.status_code == 200
        assert "<script>fetch" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;fetch(" in pages[0].text
    assert "&lt;img src=x onerror=" in pages[0].text


async def test_nul_in_queries_and_forms_never_causes_a_5xx(client, keys) -> None:
    for params in ({"model_version": "v\x00"}, {"cursor": "\x00"}, {"since": "2026-01-01\x00"}):
        response = await client.get("/review-queue", params=params, headers=keys["clinician"])
        assert response.status_code in (200, 422), (params, response.text)
    form = await client.get("/review/sign-in")
    token = CSRF.search(form.text)
    assert token is not None
    for key in ("trg_\x00_x", "trg_abc\x00def_x", "\x00"):
        response = await client.post(
            "/review/sign-in", data={"api_key": key, "csrf_token": token.group(1)}
        )
        assert response.status_code < 500, (key, response.text)
    bearer = {"Authorization": "Bearer trg_%00_x"}
    assert (await client.get("/review-queue", headers=bearer)).status_code == 401
