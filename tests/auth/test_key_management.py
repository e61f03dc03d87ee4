"""Managing keys: `triage apikey list|revoke`, the admin routes, names, audit, revocation."""

import asyncio
import getpass
import re
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from app.cli import main

pytestmark = pytest.mark.data


def _audit(url: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = "SELECT key_id, action, actor, actor_key_id FROM api_key_events ORDER BY id"
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["apikey", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_lists_and_revokes_keys_and_audits_both(database_url, monkeypatch, capsys) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database_url)
    assert _cli(capsys, "create", "--role", "clinician", "--name", "Dr Who")[0] == 0
    assert _cli(capsys, "create", "--role", "ehr", "--name", "Ward 4 EHR")[0] == 0
    code, out, _ = _cli(capsys, "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split() == ["id", "name", "role", "prefix", "created", "revoked"]
    assert len(rows) == 2 and "Dr Who" in rows[0] and "clinician" in rows[0]
    assert rows[0].endswith("-") and "Ward 4 EHR" in rows[1]

    code, out, _ = _cli(capsys, "revoke", "1")
    assert code == 0 and "revoked clinician key Dr Who (key #1)" in out
    listed = [re.split(r"\s{2,}", line) for line in _cli(capsys, "list")[1].strip().splitlines()]
    assert listed[1][:3] == ["1", "Dr Who", "clinician"] and listed[1][5].endswith(" UTC")
    assert listed[2][5] == "-"
    code, _, err = _cli(capsys, "revoke", "1")
    assert code == 1 and "already revoked" in err
    code, _, err = _cli(capsys, "revoke", "42")
    assert code == 1 and "#42 does not exist" in err
    with pytest.raises(SystemExit):
        main(["apikey", "revoke", "first"])
    actor = f"cli:{getpass.getuser()}"
    assert _audit(database_url) == [
        (1, "create", actor, None),
        (2, "create", actor, None),
        (1, "revoke", actor, None),
    ]


def test_cli_refuses_a_second_live_key_with_the_same_name_in_a_role(
    database_url, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database_url)
    assert _cli(capsys, "create", "--role", "clinician", "--name", "Dr Who")[0] == 0
    code, out, err = _cli(capsys, "create", "--role", "clinician", "--name", "  Dr Who ")
    assert code == 1 and out == ""
    assert "a live clinician key named 'Dr Who' already exists (key #1)" in err
    assert _cli(capsys, "create", "--role", "admin", "--name", "Dr Who")[0] == 0  # another role
    assert _cli(capsys, "revoke", "1")[0] == 0
    code, out, _ = _cli(capsys, "create", "--role", "clinician", "--name", "Dr Who")
    assert code == 0 and "Dr Who (key #3)" in out  # the name is free again, the id is new
    code, _, err = _cli(capsys, "create", "--role", "clinician", "--name", " ")
    assert code == 1 and "name" in err


async def test_admin_lists_creates_and_revokes_keys(app, client, keys, settings) -> None:
    admin = keys["admin"]
    listed = await client.get("/admin/keys", headers=admin)
    assert listed.status_code == 200
    rows = listed.json()
    assert [(k["name"], k["role"]) for k in rows] == [
        ("ehr-test", "ehr"),
        ("clinician-test", "clinician"),
        ("clinician2-test", "clinician"),
        ("admin-test", "admin"),
    ]
    assert rows[1]["label"] == f"clinician-test (key #{rows[1]['id']})"
    assert all(k["revoked_at"] is None and "key" not in k and "key_hash" not in k for k in rows)
    admin_id = rows[3]["id"]

    made = await client.post(
        "/admin/keys", json={"name": "Dr Who", "role": "clinician"}, headers=admin
    )
    assert made.status_code == 201, made.text
    new = made.json()
    assert new["key"].startswith(f"trg_{new['prefix']}_") and new["role"] == "clinician"
    bearer = {"Authorization": f"Bearer {new['key']}"}
    assert (await client.get("/review-queue", headers=bearer)).status_code == 200
    assert "key" not in (await client.get(f"/admin/keys/{new['id']}", headers=admin)).json()

    revoked = await client.post(f"/admin/keys/{new['id']}/revoke", headers=admin)
    assert revoked.status_code == 200
    detail = revoked.json()
    assert detail["revoked_at"] is not None
    assert [(e["action"], e["actor"], e["actor_key_id"]) for e in detail["events"]] == [
        ("create", "admin-test", admin_id),
        ("revoke", "admin-test", admin_id),
    ]
    assert _audit(settings.database_url)[-2:] == [
        (new["id"], "create", "admin-test", admin_id),
        (new["id"], "revoke", "admin-test", admin_id),
    ]
    again = await client.post(f"/admin/keys/{new['id']}/revoke", headers=admin)
    assert again.status_code == 409 and "already revoked" in again.json()["detail"]
    unknown = await client.post("/admin/keys/999999/revoke", headers=admin)
    assert unknown.status_code == 404
    assert (await client.get("/admin/keys/999999", headers=admin)).status_code == 404


async def test_a_key_revoked_by_an_admin_is_refused_on_the_next_request(
    app, client, keys, encounters
) -> None:
    assert app.state.key_cache.enabled  # the key is cached once it has been used
    assert (await client.post("/predict", json=encounters[0], headers=keys["ehr"])).is_success
    listed = (await client.get("/admin/keys", headers=keys["admin"])).json()
    ehr_id = next(k["id"] for k in listed if k["role"] == "ehr")
    assert (await client.post(f"/admin/keys/{ehr_id}/revoke", headers=keys["admin"])).is_success
    refused = await client.post("/predict", json=encounters[0], headers=keys["ehr"])
    assert refused.status_code == 401


async def test_a_key_revoked_from_the_cli_is_refused_once_the_cache_ttl_passes(
    app, client, keys, monkeypatch, capsys, settings
) -> None:
    from app.auth.cache import KeyCache

    app.state.key_cache = KeyCache(0.5)
    clinician = keys["clinician"]
    assert (await client.get("/review-queue", headers=clinician)).status_code == 200
    listed = (await client.get("/admin/keys", headers=keys["admin"])).json()
    key_id = next(k["id"] for k in listed if k["name"] == "clinician-test")
    monkeypatch.setenv("TRIAGE_DATABASE_URL", settings.database_url)
    assert _cli(capsys, "revoke", str(key_id))[0] == 0
    time.sleep(0.6)
    assert (await client.get("/review-queue", headers=clinician)).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"name": "clinician-test", "role": "clinician"}, 409),
        ({"name": " clinician-test ", "role": "clinician"}, 409),
        ({"name": "", "role": "clinician"}, 422),
        ({"name": "   ", "role": "clinician"}, 422),
        ({"name": "tab\there", "role": "clinician"}, 422),
        ({"name": "x" * 201, "role": "clinician"}, 422),
        ({"name": "Dr Who", "role": "root"}, 422),
        ({"name": "Dr Who", "role": "clinician", "key": "mine"}, 422),
    ],
)
async def test_bad_or_taken_names_are_refused(client, keys, body, status) -> None:
    answer = await client.post("/admin/keys", json=body, headers=keys["admin"])
    assert answer.status_code == status, answer.text
    if status == 409:
        assert "already exists" in answer.json()["detail"]
    listed = (await client.get("/admin/keys", headers=keys["admin"])).json()
    assert len(listed) == 4  # nothing was created


async def test_racing_creations_of_one_name_make_one_key(client, keys) -> None:
    """Admins creating the same clinician name at once: one key, the others 409."""
    body = {"name": "Dr Kim Park", "role": "clinician"}
    answers = await asyncio.gather(
        *(client.post("/admin/keys", json=body, headers=keys["admin"]) for _ in range(6))
    )
    assert sorted(a.status_code for a in answers) == [201] + [409] * 5
    listed = (await client.get("/admin/keys", headers=keys["admin"])).json()
    assert [k["name"] for k in listed].count("Dr Kim Park") == 1


async def test_the_same_name_in_another_role_is_allowed(client, keys) -> None:
    body = {"name": "clinician-test", "role": "admin"}
    assert (await client.post("/admin/keys", json=body, headers=keys["admin"])).status_code == 201


async def test_an_admin_reads_the_review_queue_but_does_not_work_it(
    client, keys, flag_split
) -> None:
    made = await client.post("/predict", json=flag_split[0][0], headers=keys["ehr"])
    item_id = made.json()["review_item_id"]
    page = await client.get("/review-queue", headers=keys["admin"])
    assert page.status_code == 200 and [i["id"] for i in page.json()["items"]] == [item_id]
    item = await client.get(f"/review-queue/{item_id}", headers=keys["admin"])
    assert item.status_code == 200 and item.json()["events"][0]["actor"] == "ehr-test"
    claim = await client.post(f"/review-queue/{item_id}/claim", headers=keys["admin"])
    assert claim.status_code == 403
