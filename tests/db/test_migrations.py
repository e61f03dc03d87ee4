"""Migrations run up and down on SQLite and PostgreSQL, and match the ORM models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app.cli import main
from app.models import Base

TABLES = {
    "api_keys",
    "api_key_events",
    "page_sessions",
    "review_items",
    "review_events",
    "risk_assessments",
    "cds_feedback",
    "scored_encounters",
    "outcomes",
    "outcome_events",
}
INITIAL = "3f6c1d2a9b10"
KEY_OWNERS = "7d1e4b9c2a02"
AT = "2026-11-30 10:00:00"


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_then_downgrade_through_the_cli(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", empty_database_url)
    assert main(["db", "upgrade"]) == 0
    assert _tables(empty_database_url) == TABLES
    assert main(["db", "upgrade"]) == 0  # idempotent
    assert main(["db", "downgrade", "base"]) == 0
    assert _tables(empty_database_url) == set()
    assert main(["db", "upgrade", "head"]) == 0
    assert _tables(empty_database_url) == TABLES


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diff == []


def test_constraint_names_follow_the_convention(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        unique = inspect(engine).get_unique_constraints("review_items")
    finally:
        engine.dispose()
    expected = "uq_review_items_encounter_id_model_version_content_hash"
    assert [u["name"] for u in unique] == [expected]


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(query))]
    finally:
        engine.dispose()


OLD_ROWS = [
    "INSERT INTO api_keys (id, name, role, prefix, key_hash, created_at, revoked_at) VALUES"
    f" (1, 'EHR', 'ehr', 'p1', '{'0' * 64}', '{AT}', NULL),"
    f" (2, 'Dr A', 'clinician', 'p2', '{'0' * 64}', '{AT}', '{AT}'),"
    f" (3, 'Dr B', 'clinician', 'p3', '{'0' * 64}', '{AT}', NULL),"
    f" (4, 'Dr B', 'clinician', 'p4', '{'0' * 64}', '{AT}', NULL),"
    f" (5, 'Dr A', 'ehr', 'p5', '{'0' * 64}', '{AT}', NULL)",
    "INSERT INTO review_items (id, encounter_id, model_version, encounter, probability, std,"
    " reasons, threshold, n_samples, seed, status, assignee, created_at, updated_at) VALUES"
    f" (1, 'e1', 'v1', '{{}}', 0.5, 0.2, '[]', 0.1, 64, 7, 'in_review', 'Dr A', '{AT}', '{AT}'),"
    f" (2, 'e2', 'v1', '{{}}', 0.5, 0.2, '[]', 0.1, 64, 7, 'in_review', 'Dr B', '{AT}', '{AT}'),"
    f" (3, 'e3', 'v1', '{{}}', 0.5, 0.2, '[]', 0.1, 64, 7, 'pending', NULL, '{AT}', '{AT}')",
    "INSERT INTO review_events (id, item_id, from_status, to_status, actor, at) VALUES"
    f" (1, 1, NULL, 'pending', 'EHR', '{AT}'), (2, 1, 'pending', 'in_review', 'Dr A', '{AT}'),"
    f" (3, 2, NULL, 'pending', 'EHR', '{AT}'), (4, 2, 'pending', 'in_review', 'Dr B', '{AT}'),"
    f" (5, 3, NULL, 'pending', 'Dr A', '{AT}')",
]


def test_key_owner_migration_keeps_and_links_existing_rows(empty_database_url: str) -> None:
    """Owners and actors get the id of the one key of the acting role with their name (none
    where the name is ambiguous); keys get a creation event; downgrading loses no case."""
    from alembic import command

    from app.core.config import Settings
    from app.db.commands import alembic_config

    config = alembic_config(Settings(database_url=empty_database_url))
    command.upgrade(config, INITIAL)
    engine = create_engine(empty_database_url)
    with engine.begin() as conn:
        for statement in OLD_ROWS:
            conn.execute(text(statement))
    engine.dispose()

    command.upgrade(config, KEY_OWNERS)
    url = empty_database_url
    owners = _rows(url, "SELECT id, assignee, assignee_key_id FROM review_items ORDER BY id")
    assert owners == [(1, "Dr A", 2), (2, "Dr B", None), (3, None, None)]
    actors = _rows(url, "SELECT actor, actor_key_id FROM review_events ORDER BY id")
    assert actors == [("EHR", 1), ("Dr A", 2), ("EHR", 1), ("Dr B", None), ("Dr A", 5)]
    audit = _rows(url, "SELECT key_id, action FROM api_key_events ORDER BY key_id, id")
    assert audit == [
        (1, "create"),
        (2, "create"),
        (2, "revoke"),
        *[(k, "create") for k in (3, 4, 5)],
    ]

    command.downgrade(config, INITIAL)
    assert _tables(url) == {"api_keys", "review_items", "review_events"}
    assert _rows(url, "SELECT id, assignee FROM review_items ORDER BY id") == [
        (1, "Dr A"),
        (2, "Dr B"),
        (3, None),
    ]
    assert [a for a, _ in actors] == [
        r[0] for r in _rows(url, "SELECT actor FROM review_events ORDER BY id")
    ]
