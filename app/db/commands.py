"""`triage db upgrade|downgrade`: run the Alembic migrations against the configured database."""

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.core.config import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(settings: Settings | None = None) -> Config:
    """An Alembic configuration for `migrations/`, bound to `settings` (default: environment)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["settings"] = settings or Settings()
    return config


def upgrade(args: argparse.Namespace) -> int:
    """Migrate to `args.revision` (default: head)."""
    command.upgrade(alembic_config(), args.revision)
    return 0


def downgrade(args: argparse.Namespace) -> int:
    """Migrate back to `args.revision` (default: one step)."""
    command.downgrade(alembic_config(), args.revision)
    return 0
