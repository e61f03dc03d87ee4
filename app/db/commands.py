"""`triage db upgrade|downgrade`: run the Alembic migrations against the configured database."""

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from app.core.config import Settings

# NOTE: a source checkout keeps migrations beside the package; an installed package (the image)
# runs from a working directory that holds them.
_CANDIDATES = (Path(__file__).resolve().parents[2] / "migrations", Path.cwd() / "migrations")


def migrations_dir() -> Path:
    """The folder of Alembic scripts: beside the package, else in the working directory."""
    for candidate in _CANDIDATES:
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError("no migrations/ folder beside the package or in the working directory")


def alembic_config(settings: Settings | None = None) -> Config:
    """An Alembic configuration for `migrations/`, bound to `settings` (default: environment)."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
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
