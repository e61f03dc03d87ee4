"""The encounter-versions migration keeps existing items, hashes them, and downgrades."""

import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, text

from app.cli import main
from app.review.versions import content_hash

BEFORE = "3f6c1d2a9b10"
ENCOUNTER = {"race": "Caucasian", "encounter_id": "enc-1", "num_lab_procedures": 41}


def _insert_item(url: str, **values: object) -> None:
    row = {
        "encounter_id": "enc-1",
        "model_version": "v1",
        "encounter": json.dumps(ENCOUNTER),
        "probability": 0.4,
        "std": 0.2,
        "reasons": "[]",
        "threshold": 0.1,
        "n_samples": 8,
        "seed": 1,
        "status": "in_review",
        "created_at": datetime(2026, 12, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 12, 1, tzinfo=UTC),
    } | values
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO review_items ({', '.join(row)}) VALUES (:{', :'.join(row)})"),
            row,
        )
    engine.dispose()


def _rows(url: str) -> list[tuple]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM review_items ORDER BY id")).mappings().all()
    engine.dispose()
    return [dict(r) for r in rows]


def test_existing_items_survive_upgrade_and_downgrade(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = empty_database_url
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    assert main(["db", "upgrade", BEFORE]) == 0
    _insert_item(url)
    assert main(["db", "upgrade", "head"]) == 0
    [item] = _rows(url)
    canonical = json.dumps(ENCOUNTER, sort_keys=True, separators=(",", ":")).encode()
    assert item["content_hash"] == hashlib.sha256(canonical).hexdigest() == content_hash(ENCOUNTER)
    assert (item["status"], item["encounter_id"]) == ("in_review", "enc-1")
    # A newer version: the old one superseded, both kept until a downgrade.
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE review_items SET status = 'superseded'"))
    engine.dispose()
    _insert_item(url, status="pending", content_hash="0" * 64, probability=0.6)
    assert main(["db", "downgrade", BEFORE]) == 0
    [kept] = _rows(url)
    assert (kept["status"], kept["probability"]) == ("pending", 0.6)
    assert "content_hash" not in kept
    assert main(["db", "upgrade", "head"]) == 0
    assert [r["status"] for r in _rows(url)] == ["pending"]


def _count_events(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM review_events")).scalar_one()
    engine.dispose()
    return count


def test_rebuilding_the_items_table_keeps_every_audit_event(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite a migration rebuilds review_items; with foreign keys on, dropping the old
    table would cascade-delete the audit trail of every case."""
    url = empty_database_url
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    assert main(["db", "upgrade", BEFORE]) == 0
    _insert_item(url, status="pending")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO review_events (item_id, from_status, to_status, actor, at)"
                " SELECT id, NULL, 'pending', 'EHR', created_at FROM review_items"
            )
        )
    engine.dispose()
    assert main(["db", "upgrade", "head"]) == 0
    assert _count_events(url) == 1
    assert main(["db", "downgrade", BEFORE]) == 0
    assert _count_events(url) == 1


def test_items_stored_before_the_band_keep_a_null_band_both_ways(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = empty_database_url
    monkeypatch.setenv("TRIAGE_DATABASE_URL", url)
    assert main(["db", "upgrade", "7d1e4b9c2a03"]) == 0
    _insert_item(url, content_hash=content_hash(ENCOUNTER))
    assert main(["db", "upgrade", "head"]) == 0
    [item] = _rows(url)
    assert (item["band_low"], item["band_high"], item["probability"]) == (None, None, 0.4)
    assert main(["db", "downgrade", "7d1e4b9c2a03"]) == 0
    [kept] = _rows(url)
    assert "band_low" not in kept and kept["probability"] == 0.4
