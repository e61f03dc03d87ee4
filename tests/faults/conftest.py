"""Fixtures for fault tests: a migrated SQLite file with keys, for services run as processes."""

from pathlib import Path

import pytest

from tests.support import prepare_database


@pytest.fixture
def sqlite_with_keys(tmp_path: Path) -> tuple[str, dict[str, str]]:
    """A migrated SQLite database URL and one plain key per role."""
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    return url, prepare_database(url)
