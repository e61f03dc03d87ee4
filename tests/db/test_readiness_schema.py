"""A replica started before the migration waits for it: `/readyz` says where the schema stands."""

from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, text

from app.core.config import Settings
from app.db.commands import alembic_config
from app.main import create_app

pytestmark = pytest.mark.data
FIRST_REVISION = "3f6c1d2a9b10"  # migrations/versions/2026_11_27_initial_schema.py


async def _ready(app: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://triage.test") as client:
        return await client.get("/readyz")


def _set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM alembic_version"))
        connection.execute(text("INSERT INTO alembic_version VALUES (:r)"), {"r": revision})
    engine.dispose()


async def test_readiness_follows_the_migration_job(
    empty_database_url: str, model_dir: Path
) -> None:
    settings = Settings(database_url=empty_database_url, model_dir=model_dir)
    config = alembic_config(settings)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        never = await _ready(app)
        assert never.status_code == 503
        assert never.json()["schema"] == "missing" and never.json()["database"] is True
        assert "triage db upgrade" in never.json()["action"]

        command.upgrade(config, "heads")  # the migration job, run while the replica waits
        current = await _ready(app)
        assert current.status_code == 200 and current.json()["schema"] == "current"

        _set_revision(empty_database_url, FIRST_REVISION)  # as if later migrations never ran
        behind = await _ready(app)
        assert behind.status_code == 503 and behind.json()["schema"] == "behind"

        # The next release's job migrated first: this release keeps serving during the rollout.
        _set_revision(empty_database_url, "2099_next_release")
        newer = await _ready(app)
        assert newer.status_code == 200 and newer.json()["schema"] == "newer"
