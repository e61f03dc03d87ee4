"""Where the database's schema stands against this code's migrations (for `/readyz`).

Replicas never migrate: a single `triage db upgrade` (a Kubernetes Job, a deploy step) does,
and a replica reports not ready until the schema it needs is there. A schema newer than this
code knows (the next release's Job ran first) still serves: migrations add before they remove,
so the release before keeps working during a rolling upgrade.
"""

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from sqlalchemy import Engine, text
from sqlalchemy.exc import ProgrammingError

from app.db.session import UNAVAILABLE_ERRORS, Database, _has_no_table

log = logging.getLogger(__name__)

_VERSIONS: Final = text("SELECT version_num FROM alembic_version")


class SchemaState(StrEnum):
    """The database's schema as `/readyz` reports it."""

    CURRENT = "current"  # at this code's newest revision
    NEWER = "newer"  # at a revision this code does not know: a newer release migrated it
    BEHIND = "behind"  # at an older revision: `triage db upgrade` has yet to run
    MISSING = "missing"  # never migrated
    UNREACHABLE = "unreachable"  # the database did not answer


READY_STATES: Final = frozenset({SchemaState.CURRENT, SchemaState.NEWER})


@dataclass(frozen=True)
class SchemaCheck:
    """This code's migration revisions: the heads it needs and every revision it knows."""

    heads: frozenset[str]
    known: frozenset[str]

    @classmethod
    def from_migrations(cls) -> "SchemaCheck | None":
        """Read `migrations/`; None (and a warning) when this install has no migrations."""
        from alembic.script import ScriptDirectory

        from app.db.commands import migrations_dir

        try:
            scripts = ScriptDirectory(str(migrations_dir()))
        except FileNotFoundError:
            log.warning("no migrations/ folder: readiness does not check the schema")
            return None
        known = frozenset(s.revision for s in scripts.walk_revisions())
        return cls(heads=frozenset(scripts.get_heads()), known=known)

    def state(self, engine: Engine) -> SchemaState:
        """Read the database's revisions and place them against this code's."""
        try:
            with engine.connect() as connection:
                found = {row[0] for row in connection.execute(_VERSIONS)}
        except ProgrammingError as exc:  # PostgreSQL: no such table
            if _has_no_table(exc):
                return SchemaState.MISSING
            raise
        except UNAVAILABLE_ERRORS as exc:  # SQLite says "no such table" this way
            return SchemaState.MISSING if _has_no_table(exc) else SchemaState.UNREACHABLE
        if not found:
            return SchemaState.MISSING
        if found == self.heads:
            return SchemaState.CURRENT
        return SchemaState.BEHIND if found <= self.known else SchemaState.NEWER


def schema_state(database: Database, check: SchemaCheck | None) -> SchemaState:
    """The schema's state, or only whether the database answers when there is no check."""
    if check is None:
        return SchemaState.CURRENT if database.ping() else SchemaState.UNREACHABLE
    return check.state(database.engine)
