"""Every answered score is kept, and `POST /outcomes` records readmissions for them, on SQLite
and PostgreSQL: idempotent, corrections audited, bad rows refused with nothing stored."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from tests.cds.support import HOOK_URL, hook_request
from tests.conftest import count_rows

pytestmark = pytest.mark.data

TODAY = datetime.now(UTC).date()
LONG_AGO = (TODAY - timedelta(days=60)).isoformat()
YESTERDAY = (TODAY - timedelta(days=1)).isoformat()


def _rows(app: Any, query: str) -> list[tuple[Any, ...]]:
    with app.state.database.session() as session:
        return [tuple(r) for r in session.execute(text(query))]


async def _score(client, keys, encounters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    response = await client.post(
        "/predict/batch", json={"encounters": encounters}, headers=keys["ehr"]
    )
    assert response.status_code == 200, response.text
    return response.json()["predictions"]


async def test_every_answer_is_kept_with_its_scores_latest_wins(app, client, keys, flag_split):
    flagged, calm = flag_split
    sent = [{**e, "discharge_date": LONG_AGO} for e in (flagged[:3] + calm[:3])]
    answers = await _score(client, keys, sent)
    single = await client.post("/predict", json=calm[3], headers=keys["ehr"])
    assert single.status_code == 200
    stored = {
        r[0]: r[1:]
        for r in _rows(
            app,
            "SELECT encounter_id, probability, raw_probability, std, flagged, discharged_on, age"
            " FROM scored_encounters",
        )
    }
    assert len(stored) == 7
    for encounter, answer in zip(sent, answers, strict=True):
        probability, raw, std, is_flagged, day, age = stored[encounter["encounter_id"]]
        assert probability == answer["probability"] and std == answer["std"]  # the same floats
        assert bool(is_flagged) is answer["flagged"] and 0.0 < raw < 1.0
        assert str(day) == LONG_AGO and age == encounter.get("age")
    assert str(stored[calm[3]["encounter_id"]][4]) == TODAY.isoformat()  # default: today
    # a later answer for the same encounter replaces its row; its review item is the same
    again = await _score(client, keys, [{**flagged[0], "discharge_date": YESTERDAY}])
    assert again[0]["review_item_id"] == answers[0]["review_item_id"]
    assert count_rows(app, "scored_encounters") == 7
    [(day,)] = _rows(
        app,
        f"SELECT discharged_on FROM scored_encounters"
        f" WHERE encounter_id = '{flagged[0]['encounter_id']}'",
    )
    assert str(day) == YESTERDAY


async def test_the_cds_hook_keeps_its_answer_discharged_at_period_end(
    app, client, keys, encounters
):
    request = hook_request(encounters[0])
    end = request["prefetch"]["encounter"]["period"]["end"][:10]
    response = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    [(eid, day)] = _rows(app, "SELECT encounter_id, discharged_on FROM scored_encounters")
    assert eid == str(encounters[0]["encounter_id"]) and str(day) == end


async def test_outcomes_are_recorded_repeated_unchanged_and_corrected_with_a_trail(
    app, client, keys, flag_split
):
    _, calm = flag_split
    await _score(client, keys, [{**e, "discharge_date": LONG_AGO} for e in calm[:2]])
    a, b = calm[0]["encounter_id"], calm[1]["encounter_id"]
    on = (TODAY - timedelta(days=50)).isoformat()
    body = {
        "outcomes": [
            {"encounter_id": a, "readmitted": False},
            {"encounter_id": b, "readmitted": True, "readmitted_on": on},
        ]
    }
    first = await client.post("/outcomes", json=body, headers=keys["ehr"])
    assert first.status_code == 200, first.text
    assert [o["status"] for o in first.json()["outcomes"]] == ["recorded", "recorded"]
    assert {o["model_version"] for o in first.json()["outcomes"]} == {"test-0.1"}
    again = await client.post("/outcomes", json=body, headers=keys["ehr"])
    assert [o["status"] for o in again.json()["outcomes"]] == ["unchanged", "unchanged"]
    changed = {"encounter_id": a, "readmitted": True}
    refused = await client.post("/outcomes", json=changed, headers=keys["ehr"])
    assert refused.status_code == 409, refused.text
    assert a in refused.json()["detail"] and '"correct": true' in refused.json()["detail"]
    corrected = await client.post(
        "/outcomes", json={**changed, "correct": True}, headers=keys["ehr"]
    )
    assert corrected.json()["outcomes"][0]["status"] == "corrected"
    assert _rows(app, f"SELECT readmitted FROM outcomes WHERE encounter_id = '{a}'") == [(True,)]
    trail = _rows(
        app,
        "SELECT kind, readmitted, previous_readmitted, actor FROM outcome_events"
        f" WHERE encounter_id = '{a}' ORDER BY id",
    )
    assert [(k, bool(r), p if p is None else bool(p), who) for k, r, p, who in trail] == [
        ("recorded", False, None, "ehr-test"),
        ("corrected", True, False, "ehr-test"),
    ]


async def test_bad_rows_are_refused_by_row_and_nothing_is_stored(app, client, keys, flag_split):
    _, calm = flag_split
    await _score(client, keys, [{**e, "discharge_date": LONG_AGO} for e in calm[:3]])
    ok = [{"encounter_id": calm[i]["encounter_id"], "readmitted": True} for i in range(3)]
    cases = [
        ({"encounter_id": "never-scored", "readmitted": True}, 404, "never-scored"),
        ({"encounter_id": calm[2]["encounter_id"], "readmitted": "yes"}, 422, "outcomes[1]"),
        ({"encounter_id": calm[2]["encounter_id"], "readmitted": 1}, 422, "readmitted"),
        ({"encounter_id": calm[2]["encounter_id"], "readmitted": True, "model_version": "v9"},
         404, "v9"),
        ({"encounter_id": calm[2]["encounter_id"], "readmitted": True,
          "readmitted_on": TODAY.isoformat()}, 422, "outside the 30-day window"),
        ({"encounter_id": calm[0]["encounter_id"], "readmitted": False}, 422, "also outcomes[0]"),
    ]  # fmt: skip
    for bad, status, named in cases:
        body = {"outcomes": [ok[0], bad, ok[1]]}
        response = await client.post("/outcomes", json=body, headers=keys["ehr"])
        assert response.status_code == status, (bad, response.text)
        assert named in response.text and "outcomes[1]" in response.text, response.text
        assert count_rows(app, "outcomes") == 0 and count_rows(app, "outcome_events") == 0
    single = await client.post(
        "/outcomes", json={"encounter_id": "nope", "readmitted": True}, headers=keys["ehr"]
    )
    assert single.status_code == 404 and "'nope' was never scored" in single.json()["detail"]
    clinician = await client.post("/outcomes", json=ok[0], headers=keys["clinician"])
    assert clinician.status_code == 403
    # a conflicting row in a batch stores none of the others either
    assert (await client.post("/outcomes", json=ok[2], headers=keys["ehr"])).status_code == 200
    conflict = {"outcomes": [ok[0], {**ok[2], "readmitted": False}]}
    response = await client.post("/outcomes", json=conflict, headers=keys["ehr"])
    assert response.status_code == 409 and "outcomes[1]" in response.text
    assert count_rows(app, "outcomes") == 1


async def test_not_readmitted_before_the_window_closes_is_refused_naming_the_date(
    app, client, keys, flag_split
):
    _, calm = flag_split
    await _score(client, keys, [{**calm[0], "discharge_date": YESTERDAY}])
    eid = calm[0]["encounter_id"]
    closes = (TODAY - timedelta(days=1) + timedelta(days=30)).isoformat()
    early = await client.post(
        "/outcomes", json={"encounter_id": eid, "readmitted": False}, headers=keys["ehr"]
    )
    assert early.status_code == 422 and closes in early.json()["detail"], early.text
    assert count_rows(app, "outcomes") == 0
    readmitted = await client.post(
        "/outcomes",
        json={"encounter_id": eid, "readmitted": True, "readmitted_on": TODAY.isoformat()},
        headers=keys["ehr"],
    )
    assert readmitted.status_code == 200, readmitted.text
    assert readmitted.json()["outcomes"][0]["status"] == "recorded"
