"""The embedded SQLite database holds encounters: only its owner may read it."""

import stat
from pathlib import Path

from sqlalchemy import text

from app.db.session import Database


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_sqlite_database_and_its_wal_files_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "triage.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.connect() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
            connection.commit()
            files = [path, *(tmp_path / f"triage.db{suffix}" for suffix in ("-wal", "-shm"))]
            for file in files:
                assert file.exists(), file
                assert _mode(file) == 0o600, (file, oct(_mode(file)))
    finally:
        database.dispose()
