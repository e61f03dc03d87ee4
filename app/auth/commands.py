"""`triage apikey create`: issue a key and print it once, as the last line on stdout."""

import argparse

from app.auth.models import Role
from app.auth.service import create_key as create_key_row
from app.core.config import Settings
from app.db.session import Database


def create_key(args: argparse.Namespace) -> int:
    """Create a key with `args.role` and `args.name`; print it last (it cannot be shown again)."""
    settings = Settings()
    database = Database(settings.database_url, timeout_s=settings.database_timeout_s)
    try:
        with database.session() as session:
            row, key = create_key_row(session=session, name=args.name, role=Role(args.role))
    finally:
        database.dispose()
    print(
        f"created {row.role} key #{row.id} for {row.name!r}; store it now, it is not shown again:"
    )
    print(key)
    return 0
