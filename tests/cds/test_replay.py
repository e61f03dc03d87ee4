"""A JWT is accepted once across every worker sharing the database; the records expire."""

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.cds.models import TokenUse
from app.db.base import utcnow
from tests.cds.support import ISSUER, PUBLIC_URL, jwks, token
from tests.conftest import count_rows
from tests.support import dead_database

pytestmark = pytest.mark.data
SEARCH = "/fhir/RiskAssessment"
QUERY = {"encounter": "e-1"}


@pytest.fixture
def settings(settings: Any, tmp_path: Path) -> Any:
    """The service with one known EHR issuer and its JWKS file."""
    from app.core.config import CdsSettings

    path = tmp_path / "ehr.jwks"
    path.write_text(json.dumps(jwks()))
    cds = CdsSettings(jwks_path=path, issuers=[ISSUER], public_url=PUBLIC_URL)
    return settings.model_copy(update={"cds": cds})


@pytest.fixture
async def other_worker(settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a second app on the same database: another worker process or replica."""
    from app.main import create_app

    second = create_app(settings)
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://triage.test") as http:
            yield http


async def test_a_jti_used_on_one_worker_is_refused_by_another(client, other_worker) -> None:
    header = token(SEARCH)
    assert (await client.get(SEARCH, params=QUERY, headers=header)).status_code == 200
    replayed = await other_worker.get(SEARCH, params=QUERY, headers=header)
    assert replayed.status_code == 401
    assert replayed.json()["detail"] == "JWT jti already used: send a new token for each call"
    fresh = token(SEARCH)
    assert (await other_worker.get(SEARCH, params=QUERY, headers=fresh)).status_code == 200
    assert (await client.get(SEARCH, params=QUERY, headers=fresh)).status_code == 401


async def test_the_records_of_expired_tokens_are_purged(app, client) -> None:
    with app.state.database.session() as session:
        session.add(TokenUse(issuer=ISSUER, jti="old", expires_at=utcnow() - timedelta(hours=1)))
        session.add(TokenUse(issuer=ISSUER, jti="live", expires_at=utcnow() + timedelta(hours=1)))
        session.commit()
    header = token(SEARCH, jti="new")
    assert (await client.get(SEARCH, params=QUERY, headers=header)).status_code == 200
    with app.state.database.session() as session:
        kept = set(session.execute(select(TokenUse.jti)).scalars())
    assert kept == {"live", "new"}
    live = await client.get(SEARCH, params=QUERY, headers=token(SEARCH, jti="live"))
    assert live.status_code == 401 and "jti already used" in live.json()["detail"]


async def test_a_jwt_while_the_database_is_down_is_503(app, client, settings, tmp_path) -> None:
    writer = app.state.token_writer
    writer.database = dead_database(settings.database_url, tmp_path)
    header = token(SEARCH)
    down = await client.get(SEARCH, params=QUERY, headers=header)
    assert down.status_code == 503 and down.headers["retry-after"] == "1"
    assert "database" in down.json()["detail"]
    writer.database = app.state.database  # back: the token was not recorded, so may be retried
    assert (await client.get(SEARCH, params=QUERY, headers=header)).status_code == 200
    assert count_rows(app, "token_uses") == 1


async def test_one_token_sent_at_once_to_two_workers_is_accepted_once(client, other_worker) -> None:
    header = token(SEARCH)
    calls = [c.get(SEARCH, params=QUERY, headers=header) for c in (client, other_worker) * 3]
    answers = sorted(r.status_code for r in await asyncio.gather(*calls))
    assert answers == [200, 401, 401, 401, 401, 401]
