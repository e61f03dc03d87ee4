"""The API's documentation: served without internet, with its auth and its error answers."""

import re

import pytest

pytestmark = pytest.mark.data

KEYED_ROUTES = [
    ("post", "/predict"),
    ("post", "/predict/batch"),
    ("get", "/review-queue"),
    ("get", "/review-queue/{item_id}"),
    ("post", "/review-queue/{item_id}/claim"),
    ("post", "/review-queue/{item_id}/release"),
    ("post", "/review-queue/{item_id}/reassign"),
    ("post", "/review-queue/{item_id}/resolve"),
    ("get", "/admin/keys"),
    ("post", "/admin/keys/{key_id}/revoke"),
]


async def test_docs_load_every_asset_from_the_service(client) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/static/swagger-ui/") for a in assets), assets
    assert "validatorUrl" in page.text  # the validator badge would fetch an image
    for asset in assets:
        answer = await client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 500, asset


async def test_every_keyed_route_declares_the_bearer_scheme_and_its_errors(client) -> None:
    document = (await client.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["ApiKey"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path in KEYED_ROUTES:
        operation = document["paths"][path][method]
        assert operation["security"] == [{"ApiKey": []}], path
        for status in ("401", "403", "422", "503"):
            assert status in operation["responses"], (path, status)
        error = operation["responses"]["401"]["content"]["application/json"]["schema"]
        assert error["$ref"].endswith("/ErrorOut")
    for path in ("/review-queue/{item_id}/claim", "/review-queue/{item_id}/resolve"):
        assert "409" in document["paths"][path]["post"]["responses"]
    assert "413" in document["paths"]["/predict/batch"]["post"]["responses"]
    for path in ("/healthz", "/readyz"):
        assert "security" not in document["paths"][path]["get"]


async def test_n_samples_has_one_limit_and_the_server_keeps_it(client, keys, encounters) -> None:
    document = (await client.get("/openapi.json")).json()
    [n_samples] = [
        p for p in document["paths"]["/predict"]["post"]["parameters"] if p["name"] == "n_samples"
    ]
    assert "65536" not in str(n_samples) and "MAX_N_SAMPLES" in n_samples["description"]
    answer = await client.post(
        "/predict", json=encounters[0], params={"n_samples": 2049}, headers=keys["ehr"]
    )
    assert answer.status_code == 422 and "n_samples" in answer.json()["detail"]
