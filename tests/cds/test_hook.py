"""The readmission-risk hook on real encounters: the same answer as /predict, as cards and a
FHIR RiskAssessment, on SQLite and PostgreSQL."""

import asyncio
import copy
from typing import Any

import pytest

from app.features.fhir.mapping import PREFETCH_KEYS
from tests.cds.support import HOOK_URL, check_answer, check_bundle, check_card, hook_request
from tests.conftest import count_rows

pytestmark = pytest.mark.data

N_SAME = 2000


async def test_discovery_names_the_service_and_a_template_per_prefetch_key(client) -> None:
    response = await client.get("/cds-services")
    assert response.status_code == 200
    services = {s["id"]: s for s in response.json()["services"]}
    discharge = services["readmission-risk"]
    assert discharge["hook"] == "encounter-discharge"
    assert services["readmission-risk-patient-view"]["hook"] == "patient-view"
    for service in services.values():
        assert service["title"] and service["description"]  # required by CDS Hooks 2.0
        assert tuple(service["prefetch"]) == PREFETCH_KEYS
    assert discharge["prefetch"]["encounter"] == "Encounter/{{context.encounterId}}"
    assert discharge["prefetch"]["patient"] == "Patient/{{context.patientId}}"


async def test_hook_answers_exactly_what_predict_answers(app, client, keys, encounters) -> None:
    rows = encounters[:N_SAME]

    async def both(row: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        predicted = await client.post("/predict", json=row, headers=keys["ehr"])
        hooked = await client.post(HOOK_URL, json=hook_request(row), headers=keys["ehr"])
        assert predicted.status_code == 200, predicted.text
        assert hooked.status_code == 200, hooked.text
        return predicted.json(), hooked.json()

    answers = [await both(row) for row in rows]
    flagged = 0
    for predicted, hooked in answers:
        assessment = check_answer(hooked)
        assert assessment is not None
        [card] = hooked["cards"]
        # Bit for bit: the JSON numbers as sent, not the validated model's Decimals.
        [forecast] = hooked["systemActions"][0]["resource"]["prediction"]
        assert forecast["probabilityDecimal"] == predicted["probability"]
        assert card["indicator"] == ("warning" if predicted["flagged"] else "info")
        assert f"dropout passes {predicted['std']:.4f}" in assessment.note[0].text
        extensions = {e["url"].rsplit("/", 1)[1]: e for e in forecast["extension"]}
        assert extensions["dropout-std"]["valueDecimal"] == predicted["std"]
        reasons = [e["valueCode"] for e in forecast["extension"] if "valueCode" in e]
        assert reasons == predicted["reasons"]
        band = extensions["probability-band"]["valueRange"]
        assert (band["low"]["value"], band["high"]["value"]) == (
            predicted["band_low"],
            predicted["band_high"],
        )
        assert assessment.encounter.reference == f"Encounter/{predicted['encounter_id']}"
        if predicted["flagged"]:
            flagged += 1
            item = predicted["review_item_id"]
            assert card["links"][0]["url"] == f"http://triage.test/review/cases/{item}"
            assert "Flagged for clinician review" in card["detail"]
        else:
            assert "links" not in card
    assert flagged >= 10, "the sample should hold flagged cases"
    # The hook found each flagged case /predict had queued: one item per case, no new version.
    assert count_rows(app, "review_items") == flagged


async def test_hook_reports_the_same_review_item_and_reasons(app, client, keys, flag_split) -> None:
    flagged, _ = flag_split
    for row in flagged[:5]:
        hooked = await client.post(HOOK_URL, json=hook_request(row), headers=keys["ehr"])
        assert hooked.status_code == 200, hooked.text
        predicted = (await client.post("/predict", json=row, headers=keys["ehr"])).json()
        assert predicted["flagged"] is True
        item = predicted["review_item_id"]
        [card] = hooked.json()["cards"]
        assert card["links"][0]["url"].endswith(f"/review/cases/{item}")
        queued = await client.get(f"/review-queue/{item}", headers=keys["clinician"])
        assert queued.json()["reasons"] == predicted["reasons"]
        assert queued.json()["encounter"]["encounter_id"] == row["encounter_id"]
    assert count_rows(app, "review_items") == 5


async def test_a_retried_hook_returns_the_same_item_and_assessment(
    app, client, keys, flag_split
) -> None:
    row = flag_split[0][0]
    request = hook_request(row)
    first = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    retry_request = {**request, "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea"}
    again = await client.post(HOOK_URL, json=retry_request, headers=keys["ehr"])
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()  # same card uuid, item link and RiskAssessment
    assert count_rows(app, "review_items") == 1 and count_rows(app, "risk_assessments") == 1
    found = await client.get(
        "/fhir/RiskAssessment", params={"encounter": row["encounter_id"]}, headers=keys["ehr"]
    )
    assert found.status_code == 200 and found.headers["content-type"] == "application/fhir+json"
    bundle = check_bundle(found.json())
    assert bundle.total == 1
    emitted = first.json()["systemActions"][0]["resource"]
    assert found.json()["entry"][0]["resource"] == emitted
    none = await client.get("/fhir/RiskAssessment?encounter=Encounter/nope", headers=keys["ehr"])
    assert none.json()["total"] == 0 and check_bundle(none.json())


async def test_the_assessment_names_model_risk_and_basis(client, keys, flag_split) -> None:
    row = flag_split[1][0]
    request = hook_request(row)
    answer = (await client.post(HOOK_URL, json=request, headers=keys["ehr"])).json()
    assessment = check_answer(answer)
    assert assessment is not None and assessment.status == "final"
    assert assessment.subject.reference == f"Patient/{request['context']['patientId']}"
    assert assessment.method.coding[0].version == "test-0.1"
    [forecast] = assessment.prediction
    assert forecast.outcome.text == "readmission within 30 days"
    risk = forecast.qualitativeRisk.coding[0].code
    p = forecast.probabilityDecimal
    assert risk == ("low" if p < 0.1 else "moderate" if p < 0.2 else "high")
    basis = {b.reference for b in assessment.basis}
    assert f"Encounter/{row['encounter_id']}" in basis
    conditions = request["prefetch"]["conditions"]["entry"]
    assert {f"Condition/{e['resource']['id']}" for e in conditions} <= basis
    [card] = answer["cards"]
    assert card["source"]["label"] == "triage test-0.1"
    model_card = await client.get(card["source"]["url"].removeprefix("http://triage.test"))
    assert model_card.status_code == 200 and model_card.json()["version"] == "test-0.1"


def _without_encounter(request: dict[str, Any]) -> None:
    del request["prefetch"]["encounter"]


def _snomed_condition(request: dict[str, Any]) -> None:
    coding = request["prefetch"]["conditions"]["entry"][0]["resource"]["code"]["coding"]
    coding[:] = [{"system": "http://snomed.info/sct", "code": "44054006"}]


def _odd_unit(request: dict[str, Any]) -> None:
    for entry in request["prefetch"]["observations"]["entry"]:
        quantity = entry["resource"].get("valueQuantity")
        if quantity and quantity.get("code") in ("%", "mg/dL", "mmol/L", "mmol/mol"):
            quantity.update(code="g/L", unit="g/L")
            return
    raise AssertionError("the row should carry an HbA1c or glucose result")


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (_without_encounter, "Encounter"),
        (_snomed_condition, "snomed"),
        (_odd_unit, "g/L"),
    ],
)
async def test_bad_fhir_gets_a_400_naming_what_to_fix_and_nothing_is_stored(
    app, client, keys, flag_split, spoil, named
) -> None:
    flagged, _ = flag_split
    measured = (None, "None")
    row = next(
        r
        for r in flagged
        if r.get("A1Cresult") not in measured or r.get("max_glu_serum") not in measured
    )
    request = copy.deepcopy(hook_request(row))
    spoil(request)
    response = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert response.status_code == 400, response.text
    assert named.lower() in response.json()["detail"].lower()
    assert "nothing was scored or stored" in response.json()["detail"]
    assert count_rows(app, "review_items") == 0 and count_rows(app, "risk_assessments") == 0


async def test_a_hook_without_prefetch_is_412_and_a_wrong_hook_400(client, keys, encounters):
    request = hook_request(encounters[0])
    bare = {k: v for k, v in request.items() if k != "prefetch"}
    missing = await client.post(HOOK_URL, json=bare, headers=keys["ehr"])
    assert missing.status_code == 412 and "prefetch" in missing.json()["detail"]
    wrong = await client.post(HOOK_URL, json={**request, "hook": "order-sign"}, headers=keys["ehr"])
    assert wrong.status_code == 400 and "encounter-discharge" in wrong.json()["detail"]
    other = {**request, "context": {**request["context"], "encounterId": "someone-else"}}
    mismatch = await client.post(HOOK_URL, json=other, headers=keys["ehr"])
    assert mismatch.status_code == 400 and "context.encounterId" in mismatch.json()["detail"]


async def test_patient_view_gives_the_discharge_answer(client, keys, encounters) -> None:
    request = hook_request(encounters[1])
    discharge = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    viewed = await client.post(
        "/cds-services/readmission-risk-patient-view",
        json={**request, "hook": "patient-view"},
        headers=keys["ehr"],
    )
    assert viewed.status_code == 200 and viewed.json() == discharge.json()


async def test_death_or_hospice_gets_an_info_card_and_nothing_stored(
    app, client, keys, flag_split
) -> None:
    row = {**flag_split[0][0], "discharge_disposition_id": 11}  # expired
    response = await client.post(HOOK_URL, json=hook_request(row), headers=keys["ehr"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert check_answer(body) is None and "systemActions" not in body
    [card] = body["cards"]
    assert card["indicator"] == "info" and "not scored" in card["summary"]
    assert "cannot happen" in card["detail"]
    assert count_rows(app, "review_items") == 0 and count_rows(app, "risk_assessments") == 0


async def test_a_flagged_case_is_503_never_a_card_when_it_cannot_be_stored(
    app, client, keys, flag_split, settings, tmp_path
) -> None:
    from tests.support import dead_database

    flagged, calm = flag_split
    app.state.review_writer.database = dead_database(settings.database_url, tmp_path)
    response = await client.post(HOOK_URL, json=hook_request(flagged[0]), headers=keys["ehr"])
    assert response.status_code == 503 and "cards" not in response.json()
    calm_answer = await client.post(HOOK_URL, json=hook_request(calm[0]), headers=keys["ehr"])
    assert calm_answer.status_code == 200  # an unflagged case needs no queue
    app.state.review_writer.database = app.state.database
    retry = await client.post(HOOK_URL, json=hook_request(flagged[0]), headers=keys["ehr"])
    assert retry.status_code == 200 and retry.json()["cards"][0]["links"]
    assert count_rows(app, "review_items") == 1


async def test_the_hook_needs_an_ehr_key(client, keys, encounters) -> None:
    request = hook_request(encounters[0])
    assert (await client.post(HOOK_URL, json=request)).status_code == 401
    clinician = await client.post(HOOK_URL, json=request, headers=keys["clinician"])
    assert clinician.status_code == 403
    assert (await client.get("/fhir/RiskAssessment?encounter=1")).status_code == 401


async def test_summary_fits_and_concurrent_hooks_agree(client, keys, flag_split) -> None:
    row = flag_split[0][1]
    request = hook_request(row)
    answers = await asyncio.gather(
        *[client.post(HOOK_URL, json=request, headers=keys["ehr"]) for _ in range(4)]
    )
    bodies = [a.json() for a in answers]
    assert all(b == bodies[0] for b in bodies)
    check_card(bodies[0]["cards"][0])


@pytest.mark.parametrize(
    ("prefetch", "named"),
    [
        ({"patient": 5}, "prefetch"),
        (
            {
                "patient": {"resourceType": "Patient", "id": "p1"},
                "encounter": {"resourceType": "Encounter", "id": "e1", "period": "soon"},
            },
            "Encounter",
        ),
    ],
)
async def test_malformed_fhir_is_a_400_not_a_crash(app, client, keys, prefetch, named) -> None:
    request = {
        "hook": "encounter-discharge",
        "hookInstance": "6b0b4c5e-1d0e-4a4e-9d7e-0a7e3b0c9f11",
        "context": {"patientId": "p1", "encounterId": "e1"},
        "prefetch": prefetch,
    }
    response = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert response.status_code == 400, response.text
    assert named in response.json()["detail"]
    assert count_rows(app, "review_items") == 0


async def test_an_oversize_prefetch_is_413(app, client, keys, settings, encounters) -> None:
    request = hook_request(encounters[0])
    filler = [{"resource": {"resourceType": "Procedure", "id": f"p{k}"}} for k in range(1)]
    request["prefetch"]["procedures"]["entry"] += filler * (settings.max_body_bytes // 40)
    response = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert response.status_code == 413 and response.json()["detail"]
    assert count_rows(app, "risk_assessments") == 0
