"""API keys: 401 without a valid key, 403 for the wrong role, CLI issues a key stored as a hash."""

import itertools

import pytest
from sqlalchemy import create_engine, text

from app.cli import main

pytestmark = pytest.mark.data

ROUTES = [
    ("POST", "/predict", {"ehr"}),
    ("POST", "/predict/batch", {"ehr"}),
    ("GET", "/review-queue", {"clinician", "admin"}),
    ("GET", "/review-queue/1", {"clinician", "admin"}),
    ("POST", "/review-queue/1/claim", {"clinician"}),
    ("POST", "/review-queue/1/release", {"clinician"}),
    ("POST", "/review-queue/1/resolve", {"clinician"}),
    ("POST", "/review-queue/1/reassign", {"admin"}),
    ("GET", "/admin/keys", {"admin"}),
    ("POST", "/admin/keys", {"admin"}),
    ("GET", "/admin/keys/1", {"admin"}),
    ("POST", "/admin/keys/1/revoke", {"admin"}),
]


async def test_without_a_key_every_route_is_401(client) -> None:
    for method, path, _ in ROUTES:
        response = await client.request(method, path, json={})
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer nope", "Basic abc", "Bearer trg_000000000000_forged"]
)
async def test_an_invalid_key_is_401(client, encounters, header) -> None:
    response = await client.post("/predict", json=encounters[0], headers={"Authorization": header})
    assert response.status_code == 401


async def test_other_roles_are_403(client, keys) -> None:
    for (method, path, roles), other in itertools.product(ROUTES, ("ehr", "clinician", "admin")):
        if other in roles:
            continue
        response = await client.request(method, path, headers=keys[other], json={})
        assert response.status_code == 403, (other, path)


async def test_a_tampered_key_is_refused(client, keys, encounters) -> None:
    good = keys["ehr"]["Authorization"]
    tampered = good[:-2] + ("A" if good[-2] != "A" else "B") + good[-1]
    response = await client.post(
        "/predict", json=encounters[0], headers={"Authorization": tampered}
    )
    assert response.status_code == 401


async def test_revoked_key_is_refused(app, client, keys, encounters) -> None:
    with app.state.database.session() as session:
        session.execute(text("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP"))
        session.commit()
    response = await client.post("/predict", json=encounters[0], headers=keys["ehr"])
    assert response.status_code == 401


def test_cli_prints_the_key_last_and_stores_only_its_hash(
    database_url, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database_url)
    assert main(["apikey", "create", "--role", "clinician", "--name", "Dr Who"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("trg_") and len(key) > 40
    engine = create_engine(database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT name, role, prefix, key_hash FROM api_keys")).all()
    engine.dispose()
    assert len(rows) == 1
    name, role, prefix, key_hash = rows[0]
    assert (name, role) == ("Dr Who", "clinician") and key.split("_")[1] == prefix
    assert key not in key_hash and key.split("_", 2)[2] not in str(rows)


def test_cli_refuses_an_unknown_role(database_url, monkeypatch) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", database_url)
    with pytest.raises(SystemExit):
        main(["apikey", "create", "--role", "root", "--name", "x"])
