"""CDS Hooks JWTs: an EHR's signed token is the ehr role; a wrong one is refused with 401."""

import json
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.cds.support import HOOK_URL, ISSUER, PUBLIC_URL, hook_request, jwks, token
from tests.conftest import count_rows

pytestmark = pytest.mark.data


@pytest.fixture
def settings(settings: Any, tmp_path: Path) -> Any:
    """The service with one known EHR issuer and its JWKS file (an RSA and an EC key)."""
    from app.core.config import CdsSettings

    path = tmp_path / "ehr.jwks"
    path.write_text(json.dumps(jwks()))
    cds = CdsSettings(jwks_path=path, issuers=[ISSUER], public_url=PUBLIC_URL)
    return settings.model_copy(update={"cds": cds})


async def test_a_valid_ehr_jwt_scores_and_queues_as_its_issuer(app, client, keys, flag_split):
    row = flag_split[0][0]
    response = await client.post(HOOK_URL, json=hook_request(row), headers=token())
    assert response.status_code == 200, response.text
    item = int(response.json()["cards"][0]["links"][0]["url"].rsplit("/", 1)[1])
    queued = (await client.get(f"/review-queue/{item}", headers=keys["clinician"])).json()
    assert [(e["actor"], e["actor_key_id"]) for e in queued["events"]] == [(ISSUER, None)]
    predicted = await client.post("/predict", json=row, headers=keys["ehr"])  # keys still work
    assert predicted.status_code == 200 and predicted.json()["review_item_id"] == item


async def test_an_es384_jwt_is_accepted(client, flag_split) -> None:
    request = hook_request(flag_split[1][0])
    response = await client.post(HOOK_URL, json=request, headers=token(kid="ec-1"))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("claims", "named"),
    [
        ({"aud": PUBLIC_URL + "/cds-services/other"}, "aud must be"),
        ({"iss": "https://stranger.example"}, "not known"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"jti": None}, "jti"),
        ({"exp": int(time.time()) + 86400}, "short-lived"),
    ],
)
async def test_a_wrong_jwt_is_401_naming_why_and_nothing_is_stored(
    app, client, flag_split, claims, named
) -> None:
    response = await client.post(
        HOOK_URL, json=hook_request(flag_split[0][0]), headers=token(**claims)
    )
    assert response.status_code == 401, response.text
    assert named in response.json()["detail"]
    assert count_rows(app, "review_items") == 0 and count_rows(app, "risk_assessments") == 0


async def test_a_replayed_jti_is_refused(client, flag_split) -> None:
    request = hook_request(flag_split[1][0])
    header = token()
    assert (await client.post(HOOK_URL, json=request, headers=header)).status_code == 200
    again = await client.post(HOOK_URL, json=request, headers=header)
    assert again.status_code == 401 and "jti already used" in again.json()["detail"]


async def test_a_symmetric_or_unknown_key_jwt_is_refused(client, flag_split) -> None:
    request = hook_request(flag_split[1][0])
    claims = {"iss": ISSUER, "aud": PUBLIC_URL + HOOK_URL, "exp": int(time.time()) + 60, "jti": "x"}
    shared = jwt.encode(claims, "a-shared-secret-of-enough-length!", algorithm="HS256")
    hs = await client.post(HOOK_URL, json=request, headers={"Authorization": f"Bearer {shared}"})
    assert hs.status_code == 401 and "alg" in hs.json()["detail"]
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other, algorithm="RS384", headers={"kid": "rsa-1"})
    bad = await client.post(HOOK_URL, json=request, headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401 and "Signature" in bad.json()["detail"]
