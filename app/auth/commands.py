"""`triage apikey create|list|revoke`: issue, list and revoke keys, audited as the OS user."""

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Role
from app.auth.service import Actor, key_label, list_keys, revoke_key
from app.auth.service import create_key as create_key_row
from app.core.config import Settings
from app.core.errors import AppError
from app.db.session import Database

COLUMNS = ("id", "name", "role", "prefix", "created", "revoked")


@contextmanager
def _session() -> Iterator[tuple[Session, Settings]]:
    settings = Settings()
    database = Database(settings.database_url, timeout_s=settings.database_timeout_s)
    try:
        with database.session() as session:
            yield session, settings
    finally:
        database.dispose()


def _run(work: Callable[[Session, Settings], int]) -> int:
    """Run `work` on a session; an `AppError` (unknown key, taken name) is printed, exit 1."""
    try:
        with _session() as (session, settings):
            return work(session, settings)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)  # NOTE: str() says where, for the operator
        return 1


def create_key(args: argparse.Namespace) -> int:
    """Create a key with `args.role` and `args.name`; print it last (it cannot be shown again)."""

    def work(session: Session, _settings: Settings) -> int:
        row, key = create_key_row(
            session=session, name=args.name, role=Role(args.role), actor=Actor.cli()
        )
        print(
            f"created {row.role} key {key_label(row.name, row.id)}; "
            "store it now, it is not shown again:"
        )
        print(key)
        return 0

    return _run(work)


def list_all(_args: argparse.Namespace) -> int:
    """Print every key as a table: id, name, role, prefix, created, revoked."""

    def work(session: Session, _settings: Settings) -> int:
        print(format_table(list_keys(session=session)))
        return 0

    return _run(work)


def revoke(args: argparse.Namespace) -> int:
    """Revoke key `args.key_id`: its API use and review-page sessions end."""

    def work(session: Session, settings: Settings) -> int:
        row = revoke_key(session=session, key_id=args.key_id, actor=Actor.cli())
        print(f"revoked {row.role} key {key_label(row.name, row.id)}; its page sessions ended")
        ttl = settings.auth.key_cache_ttl_s
        if ttl > 0:
            print(f"running servers may accept it for up to {ttl:g} s more (key cache)")
        return 0

    return _run(work)


def format_table(rows: list[ApiKey]) -> str:
    """The keys as a plain-text table, one per line under a header."""
    cells = [COLUMNS] + [
        (
            str(r.id),
            r.name,
            r.role,
            r.prefix,
            _when(r.created_at),
            _when(r.revoked_at) if r.revoked_at else "-",
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
