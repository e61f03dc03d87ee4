"""The scoring routes as a client sees them: the caller refused before the body is read, and
bodies that are not JSON answered in the API's error shapes."""

import json

import pytest

pytestmark = [
    pytest.mark.data,
    pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True),
]

PATHS = ["/predict", "/predict/batch"]


@pytest.mark.parametrize("path", PATHS)
async def test_the_caller_is_refused_before_the_body_type_is_checked(client, keys, path) -> None:
    text = {"content": b"encounter_id=e1", "headers": {"Content-Type": "text/plain"}}
    missing = await client.post(path, **text)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong_role = {**text["headers"], **keys["clinician"]}
    assert (await client.post(path, content=text["content"], headers=wrong_role)).status_code == 403


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
async def test_a_body_that_is_not_json_is_a_415_saying_so(client, keys, path, content_type):
    headers = {**keys["ehr"], "Content-Type": content_type}
    response = await client.post(path, content=b'{"encounter_id": "e1"}', headers=headers)
    assert response.status_code == 415
    assert response.json() == {
        "detail": f"the body must be JSON (Content-Type: application/json), not {content_type!r}"
    }


async def test_json_types_and_a_missing_content_type_are_read_as_json(
    client, keys, encounters
) -> None:
    body = json.dumps(encounters[0]).encode()
    for content_type in ("application/json; charset=utf-8", "application/fhir+json", None):
        headers = {**keys["ehr"], **({"Content-Type": content_type} if content_type else {})}
        response = await client.post("/predict", content=body, headers=headers)
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["encounter_id"] == encounters[0]["encounter_id"]


@pytest.mark.parametrize("path", PATHS)
async def test_malformed_json_is_a_422_naming_the_body(client, keys, path) -> None:
    headers = {**keys["ehr"], "Content-Type": "application/json"}
    response = await client.post(path, content=b'{"encounter_id": ', headers=headers)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "body" and error["message"].startswith("Invalid JSON")
    assert response.json()["detail"] == f"body: {error['message']}"


@pytest.mark.parametrize("path", PATHS)
async def test_an_empty_body_is_a_422_naming_the_body(client, keys, path) -> None:
    headers = {**keys["ehr"], "Content-Type": "application/json"}
    response = await client.post(path, content=b"", headers=headers)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["body"]


@pytest.mark.parametrize("path", PATHS)
async def test_other_methods_are_not_allowed(client, keys, path) -> None:
    response = await client.get(path, headers=keys["ehr"])
    assert response.status_code == 405 and response.json()["detail"]


@pytest.mark.parametrize(
    "value", ["1" * 5000, "[" * 100_000 + "]" * 100_000], ids=["5000 digits", "deep nesting"]
)
async def test_json_past_the_decoders_limits_is_a_422_naming_the_body(
    client, keys, encounters, value
) -> None:
    body = json.dumps(encounters[0])[:-1] + f', "num_medications": {value}}}'
    headers = {**keys["ehr"], "Content-Type": "application/json"}
    response = await client.post("/predict", content=body, headers=headers)
    assert response.status_code == 422, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "body" and error["message"].startswith("Invalid JSON")
