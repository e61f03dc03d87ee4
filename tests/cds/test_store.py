"""Kept RiskAssessments: one per key, the first kept wins, in one commit for many requests."""

from app.cds.assessment import assessment_id
from app.cds.store import Pending, assessments_of, keep_assessments
from app.db.session import Database


def _pending(encounter: str, digest: str, at: str) -> Pending:
    key = (encounter, "v1", digest)
    resource = {"resourceType": "RiskAssessment", "id": assessment_id(*key), "at": at}
    return Pending(key, resource, None)


def test_the_first_assessment_of_a_key_is_the_one_kept(database_url: str) -> None:
    database = Database(database_url)
    try:
        [first] = keep_assessments(database, [_pending("e1", "h1", "first")])
        batch = [
            _pending("e1", "h1", "retry"),
            _pending("e1", "h2", "new"),
            _pending("e1", "h2", "x"),
        ]
        kept = keep_assessments(database, batch)
        assert kept[0] == first and first["at"] == "first"  # a retry answers the first
        assert kept[1] == kept[2] and kept[1]["at"] == "new"  # twice in one commit: once kept
        assert [r["at"] for r in assessments_of(database, "e1")] == ["first", "new"]
        assert assessments_of(database, "e2") == []
    finally:
        database.dispose()
