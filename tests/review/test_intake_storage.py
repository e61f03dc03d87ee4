"""Storing flagged cases, as the review writer does: on both backends, by two processes at once."""

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.core.errors import BadRequestError
from app.db.base import utcnow
from app.db.session import Database
from app.inference.predictor import Prediction
from app.review import storage
from app.review.models import ReviewEvent, ReviewItem
from app.review.service import (
    FlaggedCase,
    get_item,
    item_events,
    store_flagged,
    store_requests,
)


@pytest.fixture
def databases(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two `Database`s on one database, as two service workers have."""
    pair = Database(database_url), Database(database_url)
    yield pair
    for database in pair:
        database.dispose()


def _case(
    encounter_id: str, *, actor: str = "ehr-a", encounter: dict[str, object] | None = None
) -> FlaggedCase:
    prediction = Prediction(
        probability=0.4375,
        std=0.125,
        std_standard_error=0.01,
        mutual_information=0.05,
        flagged=True,
        reasons=("std", "novelty"),
        threshold=0.1,
        n_samples=1000,
        seed=2**62 + 1,
        model_version="v7",
    )
    return FlaggedCase(encounter_id, encounter or {"race": "Caucasian"}, prediction, actor)


def test_a_stored_case_reads_back_exactly_as_sent(databases) -> None:
    database, _ = databases
    encounter = {
        "race": "Caucasian",
        "note": 'quote " backslash \\ nul \x00 accent é',
        "diag_1": "428",
        "num_lab_procedures": 41,
        "weight": None,
    }
    before = utcnow()
    [item_id] = store_flagged(database, [_case("enc-1", encounter=encounter)])
    after = utcnow()
    with database.session() as session:
        item = get_item(session=session, item_id=item_id)
        assert (item.encounter_id, item.model_version, item.status) == ("enc-1", "v7", "pending")
        assert item.encounter == encounter
        assert item.reasons == ["std", "novelty"]
        assert (item.probability, item.std, item.threshold) == (0.4375, 0.125, 0.1)
        assert (item.n_samples, item.seed) == (1000, 2**62 + 1)
        assert item.created_at == item.updated_at and before <= item.created_at <= after
        events = item_events(session=session, item_id=item_id)
        assert [(e.from_status, e.to_status, e.actor) for e in events] == [
            (None, "pending", "ehr-a")
        ]
        assert events[0].at == item.created_at


def test_two_workers_storing_the_same_cases_at_once_share_one_item_each(databases) -> None:
    """Each worker commits its own group of requests; when their groups overlap, both answers
    name the same item, and the item has one "pending" event, not one per worker."""
    rounds, per_round = 20, 6
    barrier = threading.Barrier(2)

    def worker(database: Database, actor: str) -> list[list[int]]:
        answers = []
        for r in range(rounds):
            cases = [_case(f"enc-{r}-{i}", actor=actor) for i in range(per_round)]
            barrier.wait()
            answers.append(store_flagged(database, cases))
        return answers

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(worker, databases, ["ehr-a", "ehr-b"])
    assert a == b
    ids = [item_id for answer in a for item_id in answer]
    assert len(set(ids)) == rounds * per_round
    with databases[0].session() as session:
        for item_id in ids:
            [event] = item_events(session=session, item_id=item_id)
            assert event.to_status == "pending" and event.actor in ("ehr-a", "ehr-b")


def test_a_case_sent_twice_keeps_one_item_and_one_event(databases) -> None:
    database, _ = databases
    first = store_flagged(database, [_case("enc-1"), _case("enc-2"), _case("enc-1")])
    assert first[0] == first[2] != first[1]
    again = store_flagged(database, [_case("enc-2", actor="ehr-b"), _case("enc-3"), _case("enc-2")])
    assert again[0] == again[2] == first[1]
    assert again[1] not in first
    with database.session() as session:
        for item_id in (*first, again[1]):
            [event] = item_events(session=session, item_id=item_id)
            assert event.actor == "ehr-a"


def test_a_group_larger_than_one_statement_is_stored_whole(databases, monkeypatch) -> None:
    """SQLite takes a group commit's rows a statement's worth at a time; none is dropped."""
    monkeypatch.setattr(storage, "_ROWS_PER_STATEMENT", 3)
    database, _ = databases
    [kept] = store_flagged(database, [_case("enc-4")])
    ids = store_flagged(database, [_case(f"enc-{i}") for i in range(8)])
    assert ids[4] == kept and len(set(ids)) == 8
    with database.session() as session:
        assert session.query(ReviewItem).count() == 8
        assert sorted(e.item_id for e in session.query(ReviewEvent)) == sorted(ids)


def test_a_value_the_database_refuses_fails_only_its_request(databases, database_url) -> None:
    """Two requests in one group commit: the one PostgreSQL refuses gets its 400, the other
    is stored."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite stores a NUL character in text; PostgreSQL refuses it")
    database, _ = databases
    refused, stored = store_requests(database, [[_case("bad\x00id")], [_case("enc-9")]])
    assert isinstance(refused, BadRequestError) and "NUL" in refused.message
    assert isinstance(stored, list) and len(stored) == 1
    with database.session() as session:
        assert get_item(session=session, item_id=stored[0]).encounter_id == "enc-9"
