"""Alembic environment: the URL comes from `Settings` (TRIAGE_DATABASE_URL), never from a file."""

from alembic import context
from sqlalchemy import Connection

from app.core.config import Settings
from app.db.models import Base
from app.db.session import make_engine

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
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
