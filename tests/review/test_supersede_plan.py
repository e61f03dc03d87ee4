"""Superseding older versions costs one index lookup per incoming case, however long the queue."""

import json
import sqlite3
from pathlib import Path

from app.review.versions import _STATEMENTS
from tests.support import migrate_to_head


def test_sqlite_looks_each_case_up_instead_of_reading_every_open_item(tmp_path: Path) -> None:
    # NOTE: planned with the open items as the outer loop, a commit of a 1,000-encounter batch
    # read every open item 1,000 times, and batches slowed down as the queue filled.
    path = tmp_path / "triage.db"
    migrate_to_head(f"sqlite:///{path}")
    sql = str(_STATEMENTS["sqlite"]).replace(":cases", "?").replace(":now", "?")
    cases = json.dumps([{"encounter_id": "e", "model_version": "v", "content_hash": "h"}])
    with sqlite3.connect(path) as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", (cases, "t"))]
    on_items = [step for step in plan if "review_items" in step or " item " in step]
    assert any("uq_review_items_open_encounter" in step for step in on_items), plan
    assert not any(step.startswith("SCAN") or "(status=?)" in step for step in on_items), plan
