"""Keys stored only as hashes and compared in constant time; roles; no patient data in logs."""

import hashlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy import inspect as sa_inspect

from app.auth import service as auth_service
from tests.support import prepare_database, triage_serve

pytestmark = pytest.mark.data

ROOT = Path(__file__).resolve().parents[2]


def _all_text(url: str) -> str:
    """Every value of every table, as text."""
    engine = create_engine(url)
    dump = []
    try:
        with engine.connect() as conn:
            for table in sa_inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    dump.append(" ".join(map(str, row)))
    finally:
        engine.dispose()
    return "\n".join(dump)


async def test_database_holds_only_key_hashes(client, keys, settings) -> None:
    plain = [h["Authorization"].split(" ", 1)[1] for h in keys.values()]
    assert (await client.get("/review-queue", headers=keys["clinician"])).status_code == 200
    dump = _all_text(settings.database_url)
    for key in plain:
        secret = key.split("_", 2)[2]  # NOTE: the secret itself may hold "_" (URL-safe base64)
        assert key not in dump and secret not in dump
        assert hashlib.sha256(key.encode()).hexdigest() in dump


def test_keys_and_tokens_are_compared_in_constant_time() -> None:
    source = inspect.getsource(auth_service.authenticate)
    assert "hmac.compare_digest" in source
    # The lookup is by the public prefix; the secret never appears in a WHERE clause.
    assert "key_hash ==" not in source and "== key" not in source
    metrics_route = (ROOT / "app" / "api" / "routes" / "metrics.py").read_text()
    assert "compare_digest" in metrics_route


async def test_review_queue_never_answers_an_ehr_key(app, client, keys, flag_split) -> None:
    flagged, _ = flag_split
    made = await client.post("/predict", json=flagged[0], headers=keys["ehr"])
    item_id = made.json()["review_item_id"]
    paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/review-queue")}
    assert len(paths) >= 4
    for template, operations in paths.items():
        path = template.replace("{item_id}", str(item_id))
        for method in (m.upper() for m in operations):
            body = {"outcome": "agree"} if path.endswith("resolve") else None
            answer = await client.request(method, path, json=body, headers=keys["ehr"])
            assert answer.status_code == 403, (method, path, answer.status_code)
            detail = answer.json()["detail"]
            assert "needs the role" in detail and "the key is ehr" in detail
            assert "encounter" not in answer.text
    # The review page refuses the key at sign-in.
    form = await client.get("/review/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    key = keys["ehr"]["Authorization"].split(" ", 1)[1]
    page = await client.post("/review/sign-in", data={"api_key": key, "csrf_token": token[1]})
    assert page.status_code in (401, 403)
    assert (await client.get("/review", follow_redirects=False)).status_code in (303, 307, 401)


def test_container_runs_as_non_root() -> None:
    dockerfile = ROOT / "Dockerfile"
    lines = [line.split("#", 1)[0].strip() for line in dockerfile.read_text().splitlines()]
    users = [line.split(None, 1)[1].strip() for line in lines if line.upper().startswith("USER ")]
    assert users, "the Dockerfile sets no USER: the container would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"the final USER is {user}"


@pytest.mark.slow
def test_no_patient_data_in_debug_logs(
    tmp_path: Path, model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    """A full run at DEBUG: predict, batch, a refusal, the queue; grep the log for the values."""
    url = f"sqlite:///{tmp_path / 'logs.db'}"
    keys = prepare_database(url)
    ehr = {"Authorization": f"Bearer {keys['ehr']}"}
    clinician = {"Authorization": f"Bearer {keys['clinician']}"}
    markers = {
        "encounter_id": "enc-Zq81xPatient",
        "patient_nbr": 918273645501,
        "medical_specialty": "Zqxspecialty",
    }
    batch = [
        {**e, **markers, "encounter_id": f"enc-Zq81x-{i}"} for i, e in enumerate(encounters[:60])
    ]
    env = {"TRIAGE_LOG_LEVEL": "DEBUG"}
    with triage_serve(database_url=url, model_dir=model_dir, log_dir=tmp_path, extra_env=env) as s:
        with httpx.Client(base_url=s.base_url, timeout=60) as http:
            assert http.post("/predict", json={**encounters[0], **markers}, headers=ehr).is_success
            answers = http.post("/predict/batch", json={"encounters": batch}, headers=ehr)
            assert answers.status_code == 200
            refused = http.post(
                "/predict", json={**encounters[1], **markers, "race": "Zqxrace"}, headers=ehr
            )
            assert refused.status_code == 422
            items = http.get("/review-queue", headers=clinician).json()["items"]
            assert items, "the test model flags some of 60 encounters"
            item_id = items[0]["id"]
            assert http.post(f"/review-queue/{item_id}/claim", headers=clinician).is_success
            http.get(f"/review-queue/{item_id}", headers=clinician)
            http.get("/metrics")
        log = s.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert sum(line.get("message") == "request" for line in lines) >= 6
    for value in ["Zq81x", "918273645501", "Zqxspecialty", "Zqxrace", *_values(encounters[0])]:
        assert value not in log, f"patient value {value!r} appears in the log"


def _values(encounter: dict[str, Any]) -> list[str]:
    """The encounter's distinctive values (long enough not to match log vocabulary by chance)."""
    out = []
    for name in ("patient_nbr", "diag_1", "diag_2", "diag_3", "medical_specialty", "payer_code"):
        value = str(encounter.get(name) or "")
        if len(value) >= 4 and not value.isalpha():
            out.append(f'"{value}"')
    return out


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
async def test_scoring_checks_the_key_before_the_body(client, keys, path) -> None:
    """Without a valid key nothing about the body is revealed: 401, not a validation answer."""
    bad = {"content": b"{not json", "headers": {"Content-Type": "application/json"}}
    assert (await client.post(path, **bad)).status_code == 401
    clinician = {**bad["headers"], **keys["clinician"]}
    assert (await client.post(path, content=b"[]", headers=clinician)).status_code == 403
    ehr = {**bad["headers"], **keys["ehr"]}
    assert (await client.post(path, content=b"{not json", headers=ehr)).status_code == 422
