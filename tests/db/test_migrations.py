"""Migrations run up and down on SQLite and PostgreSQL, and match the ORM models."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from app.cli import main
from app.db.models import Base

TABLES = {"api_keys", "review_items", "review_events"}


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
