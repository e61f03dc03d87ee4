"""CDS Hooks feedback: stored, and shown in the audit trail of the card's review case."""

import pytest

from app.review.models import ReviewEvent
from app.web.present import event_view
from tests.cds.support import HOOK_URL, hook_request
from tests.conftest import count_rows

pytestmark = pytest.mark.data
FEEDBACK_URL = f"{HOOK_URL}/feedback"


async def test_an_overridden_card_shows_in_its_case_audit_trail(app, client, keys, flag_split):
    answer = await client.post(HOOK_URL, json=hook_request(flag_split[0][0]), headers=keys["ehr"])
    [card] = answer.json()["cards"]
    item_id = int(card["links"][0]["url"].rsplit("/", 1)[1])
    feedback = {
        "feedback": [
            {
                "card": card["uuid"],
                "outcome": "overridden",
                "overrideReason": {
                    "reason": {
                        "system": "urn:example:reasons",
                        "code": "goals",
                        "display": "Discharge plan already in place",
                    },
                    "userComment": "home nursing booked",
                },
                "outcomeTimestamp": "2026-12-03T10:00:00Z",
            }
        ]
    }
    response = await client.post(FEEDBACK_URL, json=feedback, headers=keys["ehr"])
    assert response.status_code == 200, response.text
    item = (await client.get(f"/review-queue/{item_id}", headers=keys["clinician"])).json()
    [queued, told] = item["events"]
    assert queued["to_status"] == "pending"
    assert told["detail"]["ehr_feedback"] == "overridden" and told["actor"] == "ehr-test"
    assert told["from_status"] == told["to_status"] == "pending"  # the case did not move
    with app.state.database.session() as session:  # as the review page words it
        event = session.get_one(ReviewEvent, told_id(session, item_id))
        assert event_view(event).change == (
            "EHR feedback: overridden (Discharge plan already in place; home nursing booked)"
        )
    assert count_rows(app, "cds_feedback") == 1


def told_id(session, item_id: int) -> int:
    from sqlalchemy import select

    query = select(ReviewEvent.id).where(ReviewEvent.item_id == item_id).order_by(ReviewEvent.id)
    return list(session.execute(query).scalars())[-1]


async def test_accepted_feedback_on_an_unflagged_card_is_stored(app, client, keys, flag_split):
    answer = await client.post(HOOK_URL, json=hook_request(flag_split[1][0]), headers=keys["ehr"])
    [card] = answer.json()["cards"]
    entry = {"card": card["uuid"], "outcome": "accepted", "outcomeTimestamp": "2026-12-03T10:00Z"}
    response = await client.post(FEEDBACK_URL, json={"feedback": [entry]}, headers=keys["ehr"])
    assert response.status_code == 200 and response.json() == {"stored": 1}
    assert count_rows(app, "cds_feedback") == 1 and count_rows(app, "review_events") == 0


async def test_feedback_on_an_unknown_card_is_404_and_nothing_is_stored(app, client, keys):
    entry = {"card": "not-ours", "outcome": "accepted", "outcomeTimestamp": "2026-12-03T10:00Z"}
    response = await client.post(FEEDBACK_URL, json={"feedback": [entry]}, headers=keys["ehr"])
    assert response.status_code == 404 and "not-ours" in response.json()["detail"]
    bad = {**entry, "outcome": "ignored"}
    assert (
        await client.post(FEEDBACK_URL, json={"feedback": [bad]}, headers=keys["ehr"])
    ).status_code == 422
    assert count_rows(app, "cds_feedback") == 0
