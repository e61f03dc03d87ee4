"""A database that was never migrated is named as such, with the command that fixes it."""

import pytest
from sqlalchemy import make_url

from app.cli import main
from app.core.errors import SchemaMissingError
from app.db.session import Database


def test_a_key_command_on_an_unmigrated_database_says_to_upgrade(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", empty_database_url)
    assert main(["apikey", "create", "--name", "Dr Ada", "--role", "clinician"]) == 1
    error = capsys.readouterr().err
    assert "has no schema: run `triage db upgrade` first" in error
    assert "unavailable" not in error
    password = make_url(empty_database_url).password
    assert not password or password not in error  # the operator sees where, not the secret


def test_a_request_on_an_unmigrated_database_is_a_503_saying_why(empty_database_url: str) -> None:
    database = Database(empty_database_url, timeout_s=5)
    try:
        with pytest.raises(SchemaMissingError) as raised, database.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM review_items")
    finally:
        database.dispose()
    assert raised.value.status_code == 503
    assert raised.value.message == "the database has no schema: run `triage db upgrade` first"
