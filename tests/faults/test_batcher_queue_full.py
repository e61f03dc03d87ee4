"""A burst beyond the batcher's queue answers 503 with Retry-After, then service resumes."""

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.auth.models import Role
from app.auth.service import create_key
from app.core.config import Settings
from app.main import create_app
from tests.support import prepare_database

pytestmark = pytest.mark.data

QUEUE = 4


async def test_full_queue_is_503_with_retry_after(
    model_dir: Path, tmp_path: Path, encounters: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    prepare_database(url)
    # NOTE: every batch on a worker thread, so the stalled engine below holds up the batcher
    # and not the event loop that takes the burst.
    inference = {"device": "cpu", "max_batch_size": QUEUE, "max_queue_size": QUEUE}
    inference |= {"inline_max_items": 0}
    settings = Settings(database_url=url, model_dir=model_dir, inference=inference)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        with app.state.database.session() as session:
            key = create_key(session=session, name="ehr", role=Role.EHR)[1]
        predictor = app.state.predictor
        fast = predictor.score_columns
        gate = threading.Event()

        def slow(*args: Any) -> Any:  # NOTE: an engine that stalls until the burst is in.
            gate.wait(60)
            return fast(*args)

        predictor.score_columns = slow
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            burst = [
                asyncio.create_task(client.post("/predict", json=e, headers=headers))
                for e in encounters[:40]
            ]
            # Wait until every request has either been refused or is stuck behind the gate.
            deadline, last, stable_since = time.monotonic() + 60, -1, time.monotonic()
            while time.monotonic() < deadline:
                done = sum(t.done() for t in burst)
                if done != last:
                    last, stable_since = done, time.monotonic()
                elif time.monotonic() - stable_since > 1.0:
                    break
                await asyncio.sleep(0.02)
            gate.set()
            answers = await asyncio.gather(*burst)
            predictor.score_columns = fast
            after = await client.post("/predict", json=encounters[41], headers=headers)

    refused = [a for a in answers if a.status_code == 503]
    served = [a for a in answers if a.status_code == 200]
    assert len(refused) + len(served) == 40, sorted({a.status_code for a in answers})
    # One batch (at most QUEUE) on the engine, QUEUE waiting: everything beyond is refused.
    assert len(served) <= 2 * QUEUE and len(refused) >= 40 - 2 * QUEUE
    for answer in refused:
        assert int(answer.headers["retry-after"]) >= 1
        assert "queue is full" in answer.json()["detail"]
    assert after.status_code == 200
