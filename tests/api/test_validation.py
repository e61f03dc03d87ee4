"""Every 422 path of `/predict`: the answer names the field and stores nothing."""

import json
from typing import Any

import pytest

from tests.conftest import count_rows

# NOTE: validation happens before any storage, so one backend is enough here.
pytestmark = [
    pytest.mark.data,
    pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True),
]


def _with(encounter: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = dict(encounter)
    for name, value in changes.items():
        out[name.replace("__", "-")] = value
    return out


CASES = [
    ("unknown field", {"favourite_colour": "blue"}, "favourite_colour"),
    ("label is not an input", {"readmitted": "NO"}, "readmitted"),
    ("underscore med name", {"glyburide_metformin": "No"}, "glyburide_metformin"),
    ("missing marker", {"race": "?"}, "race"),
    ("count as string", {"num_medications": "12"}, "num_medications"),
    ("count as float", {"num_medications": 12.5}, "num_medications"),
    ("count as bool", {"num_medications": True}, "num_medications"),
    ("negative count", {"number_emergency": -1}, "number_emergency"),
    ("absurd count", {"num_lab_procedures": 10**6}, "num_lab_procedures"),
    ("zero days in hospital", {"time_in_hospital": 0}, "time_in_hospital"),
    ("unknown code", {"admission_type_id": 99}, "admission_type_id"),
    ("code as string", {"admission_source_id": "7"}, "admission_source_id"),
    ("age bucket", {"age": "[100-110)"}, "age"),
    ("age as number", {"age": 55}, "age"),
    ("medication state", {"insulin": "Sideways"}, "insulin"),
    ("hyphenated medication state", {"glyburide__metformin": "Maybe"}, "glyburide-metformin"),
    ("malformed ICD-9", {"diag_1": "25O.01"}, "diag_1"),
    ("ICD-9 as number", {"diag_2": 250.01}, "diag_2"),
    ("ICD-10 code", {"diag_3": "E11.9"}, "diag_3"),
    ("lab value", {"A1Cresult": ">9"}, "A1Cresult"),
    ("gender", {"gender": "F"}, "gender"),
    ("empty encounter id", {"encounter_id": ""}, "encounter_id"),
    ("numeric encounter id", {"encounter_id": 12345}, "encounter_id"),
]


@pytest.mark.parametrize(("change", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_field_is_named(app, client, keys, encounters, change, field) -> None:
    response = await client.post(
        "/predict", json=_with(encounters[0], **change), headers=keys["ehr"]
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert count_rows(app, "review_items") == 0


async def test_missing_encounter_id(client, keys, encounters) -> None:
    body = {k: v for k, v in encounters[0].items() if k != "encounter_id"}
    response = await client.post("/predict", json=body, headers=keys["ehr"])
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "encounter_id"


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
async def test_non_finite_numbers(client, keys, encounters, literal) -> None:
    body = {**encounters[0], "number_diagnoses": 0}
    raw = json.dumps(body).replace('"number_diagnoses": 0', f'"number_diagnoses": {literal}')
    headers = {**keys["ehr"], "content-type": "application/json"}
    response = await client.post("/predict", content=raw, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "number_diagnoses"


@pytest.mark.parametrize("disposition", [11, 13, 14, 19, 20, 21])
async def test_death_or_hospice_is_answered_as_not_applicable(
    client, keys, encounters, disposition
) -> None:
    body = _with(encounters[0], discharge_disposition_id=disposition)
    response = await client.post("/predict", json=body, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["applicable"] is False and answer["probability"] is None
    assert f"discharge disposition {disposition} (" in answer["reason"]
    assert "readmission cannot happen" in answer["reason"]
    assert (answer["flagged"], answer["review_item_id"]) == (False, None)


async def test_a_batch_answers_hospice_rows_in_place_and_stores_nothing_for_them(
    client, keys, flag_split
) -> None:
    flagged, calm = flag_split
    hospice = [_with(e, discharge_disposition_id=13) for e in flagged[:2]]
    batch = [calm[0], hospice[0], flagged[2], hospice[1]]
    response = await client.post("/predict/batch", json={"encounters": batch}, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    answers = response.json()["predictions"]
    assert [a["encounter_id"] for a in answers] == [e["encounter_id"] for e in batch]
    assert [a["applicable"] for a in answers] == [True, False, True, False]
    assert answers[2]["flagged"] and answers[2]["review_item_id"] is not None
    queue = await client.get("/review-queue", headers=keys["clinician"])
    stored = {item["encounter_id"] for item in queue.json()["items"]}
    assert stored == {flagged[2]["encounter_id"]}


async def test_a_malformed_disposition_is_still_refused(client, keys, encounters) -> None:
    body = _with(encounters[0], discharge_disposition_id=31)
    response = await client.post("/predict", json=body, headers=keys["ehr"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "discharge_disposition_id"


async def test_input_values_are_not_echoed(client, keys, encounters) -> None:
    body = _with(encounters[0], medical_specialty="Secret<Value>")
    response = await client.post("/predict", json=body, headers=keys["ehr"])
    assert response.status_code == 422 and "Secret" not in response.text


@pytest.mark.parametrize(
    "params", [{"n_samples": 1}, {"n_samples": 10**6}, {"seed": -1}, {"n_samples": "many"}]
)
async def test_bad_query_parameters(client, keys, encounters, params) -> None:
    response = await client.post("/predict", json=encounters[0], params=params, headers=keys["ehr"])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == next(iter(params))


async def test_samples_above_the_configured_bound(app, client, keys, encounters) -> None:
    app.state.settings.inference.max_n_samples = 100
    response = await client.post(
        "/predict", json=encounters[0], params={"n_samples": 101}, headers=keys["ehr"]
    )
    assert response.status_code == 422
    assert response.json()["detail"] == "n_samples: must be between 2 and 100"
    assert [e["field"] for e in response.json()["errors"]] == ["n_samples"]


async def test_malformed_json_and_empty_batch(client, keys) -> None:
    headers = {**keys["ehr"], "content-type": "application/json"}
    assert (await client.post("/predict", content=b"{not json", headers=headers)).status_code == 422
    empty = await client.post("/predict/batch", json={"encounters": []}, headers=keys["ehr"])
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "encounters"


async def test_oversized_body_is_refused(app, client, keys) -> None:
    big = b'{"encounter_id": "' + b"x" * (9 * 1024 * 1024) + b'"}'
    headers = {**keys["ehr"], "content-type": "application/json"}
    assert (await client.post("/predict", content=big, headers=headers)).status_code == 413


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("diag_1", "25O.01", "not an ICD-9-CM code"),
        ("payer_code", "MC;DROP", "only letters, digits"),
        ("encounter_id", "enc\u0007", "control characters"),
    ],
)
async def test_pattern_errors_are_worded_not_quoted(client, keys, encounters, field, value, words):
    response = await client.post(
        "/predict", json=_with(encounters[0], **{field: value}), headers=keys["ehr"]
    )
    [error] = response.json()["errors"]
    assert response.status_code == 422 and error["field"] == field
    assert words in error["message"] and "^" not in response.text
