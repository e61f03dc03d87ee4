"""Dependencies down: a flagged case is never answered 200 unless it was stored."""

import pytest
from sqlalchemy import text

from tests.conftest import count_rows
from tests.support import dead_database

pytestmark = pytest.mark.data


async def test_flagged_case_gets_503_when_it_cannot_be_stored(
    app, client, keys, flag_split, settings, tmp_path
) -> None:
    flagged, calm = flag_split
    app.state.review_writer.database = dead_database(settings.database_url, tmp_path)
    response = await client.post("/predict", json=flagged[0], headers=keys["ehr"])
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "database" in response.json()["detail"]
    batch = {"encounters": [calm[0], flagged[1]]}
    assert (await client.post("/predict/batch", json=batch, headers=keys["ehr"])).status_code == 503
    # A case that needs no review does not need the queue, so it is still answered.
    assert (await client.post("/predict", json=calm[0], headers=keys["ehr"])).status_code == 200
    app.state.review_writer.database = app.state.database  # back: the retry is stored
    retry = await client.post("/predict", json=flagged[0], headers=keys["ehr"])
    assert retry.status_code == 200 and retry.json()["review_item_id"] is not None
    assert count_rows(app, "review_items") == 1


# NOTE: only a database server can drop its clients' connections.
@pytest.mark.postgres
@pytest.mark.parametrize("empty_database_url", ["postgresql"], indirect=True)
async def test_a_flagged_case_after_the_database_dropped_its_connections_is_stored(
    app, client, keys, flag_split
) -> None:
    """The review-queue writer keeps its connections between commits. PostgreSQL restarted (its
    backends ended) leaves them dead: the next flagged case is still stored and answered 200."""
    flagged, _ = flag_split
    first = await client.post("/predict", json=flagged[0], headers=keys["ehr"])
    assert first.status_code == 200 and first.json()["review_item_id"] is not None
    with app.state.database.connect() as connection:
        ended = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    assert ended >= 1
    second = await client.post("/predict", json=flagged[1], headers=keys["ehr"])
    assert second.status_code == 200, second.text
    assert second.json()["review_item_id"] is not None
    assert count_rows(app, "review_items") == 2


async def test_everything_behind_auth_is_503_and_not_ready(
    app, client, keys, encounters, settings, tmp_path
) -> None:
    dead = dead_database(settings.database_url, tmp_path)
    app.state.database = dead
    app.state.review_writer.database = dead
    predict = await client.post("/predict", json=encounters[0], headers=keys["ehr"])
    assert predict.status_code == 503
    queue = await client.get("/review-queue", headers=keys["clinician"])
    assert queue.status_code == 503
    ready = await client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["database"] is False
    assert (await client.get("/healthz")).status_code == 200


async def test_ready_when_model_and_database_are_up(client) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "model_loaded": True, "model_version": "test-0.1", "database": True, "schema": "current",
        "status": "ready",
    }  # fmt: skip
