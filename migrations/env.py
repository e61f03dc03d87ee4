"""Alembic environment: the URL comes from `Settings` (TRIAGE_DATABASE_URL), never from a file."""

from alembic import context
from sqlalchemy import Connection

from app.core.config import Settings
from app.db.session import make_engine
from app.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    if connection.dialect.name != "sqlite":
        _migrate(connection)
        return
    # NOTE: batch mode rebuilds a table as copy, drop, rename; with foreign keys on, the drop
    # deletes every row that references the table (ON DELETE CASCADE: a case's whole audit
    # trail). SQLite's own procedure for schema changes: keys off, change, check, keys on.
    # The pragma is ignored inside a transaction, so it is set and committed before one.
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        _migrate(connection)
        broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise RuntimeError(f"migration left rows with dangling foreign keys: {broken[:5]}")
    finally:
        connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # NOTE: batch mode lets later migrations alter tables on SQLite, which lacks ALTER.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Emit SQL to stdout instead of running it."""
    settings = config.attributes.get("settings") or Settings()
    context.configure(
        url=settings.database_url, target_metadata=target_metadata, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run migrations on a live connection (one passed in, or one from Settings)."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    settings = config.attributes.get("settings") or Settings()
    engine = make_engine(settings.database_url, timeout_s=settings.database_timeout_s)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
