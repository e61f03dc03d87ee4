"""PostgreSQL stops mid-load: quick 503s, no 200 for an unstored flagged case, self-recovery."""

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, select

from app.review.models import ReviewItem
from tests.support import postgres, postgres_bindir, prepare_database, triage_serve

pytestmark = [pytest.mark.data, pytest.mark.postgres, pytest.mark.slow]

TIMEOUT_S = 2.0
LOOPS = 4
HEALTHY_S, OUTAGE_S, RECOVERY_LIMIT_S = 2.0, 4.0, 20.0


@dataclass
class Answer:
    started: float
    ended: float
    status: int
    body: dict[str, Any]
    retry_after: str | None


@dataclass
class Timeline:
    stopped: float = 0.0  # pg_ctl stop returned: nothing is listening
    restarting: float = 0.0  # pg_ctl start called
    restarted: float = 0.0  # pg_ctl start returned: accepting connections
    ready_during_outage: int = 0
    ready_after: int = 0


async def _drive(base_url: str, key: str, rows: list[dict[str, Any]], pg: Any) -> Any:
    answers: list[Answer] = []
    timeline = Timeline()
    stop = asyncio.Event()
    counter = 0
    headers = {"Authorization": f"Bearer {key}"}

    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:

        async def loop() -> None:
            nonlocal counter
            while not stop.is_set():
                counter += 1
                body = {**rows[counter % len(rows)], "encounter_id": f"outage-{counter}"}
                started = time.monotonic()
                response = await client.post("/predict", json=body, headers=headers)
                answers.append(
                    Answer(
                        started,
                        time.monotonic(),
                        response.status_code,
                        response.json(),
                        response.headers.get("retry-after"),
                    )
                )

        loops = [asyncio.create_task(loop()) for _ in range(LOOPS)]
        await asyncio.sleep(HEALTHY_S)
        await asyncio.to_thread(pg.stop, "fast")
        timeline.stopped = time.monotonic()
        await asyncio.sleep(OUTAGE_S / 2)
        timeline.ready_during_outage = (await client.get("/readyz")).status_code
        await asyncio.sleep(OUTAGE_S / 2)
        timeline.restarting = time.monotonic()
        await asyncio.to_thread(pg.start)
        timeline.restarted = time.monotonic()
        deadline = timeline.restarted + RECOVERY_LIMIT_S
        while time.monotonic() < deadline:
            recent = [a for a in answers if a.started > timeline.restarted]
            if sum(a.status == 200 for a in recent) >= 20:
                break
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*loops), 60)
        timeline.ready_after = (await client.get("/readyz")).status_code
    return answers, timeline


def test_database_stops_mid_load_and_comes_back(
    model_dir: Path, tmp_path: Path, encounters: list[dict[str, Any]]
) -> None:
    if postgres_bindir() is None:
        pytest.skip("no PostgreSQL binaries (install Debian's postgresql)")
    with postgres() as pg:
        keys = prepare_database(pg.url)
        env = {"TRIAGE_DATABASE_TIMEOUT_S": str(TIMEOUT_S)}
        with triage_serve(
            database_url=pg.url, model_dir=model_dir, log_dir=tmp_path, extra_env=env
        ) as server:
            answers, t = asyncio.run(_drive(server.base_url, keys["ehr"], encounters, pg))
        engine = create_engine(pg.url)
        with engine.connect() as conn:
            stored = dict(conn.execute(select(ReviewItem.encounter_id, ReviewItem.id)).all())
        engine.dispose()

    statuses = {a.status for a in answers}
    assert statuses <= {200, 503}, statuses
    before = [a for a in answers if a.ended < t.stopped - 1.0]
    outage = [a for a in answers if a.started > t.stopped and a.ended < t.restarting]
    after = [a for a in answers if a.started > t.restarted]
    assert before and all(a.status == 200 for a in before)
    # Nothing listens: a flagged case cannot be stored, so it is a quick 503 the EHR retries;
    # an unflagged one needs no database (its key is cached) and is still answered.
    assert outage and all(a.status == 503 or not a.body["flagged"] for a in outage)
    assert any(a.status == 503 for a in outage)
    assert all(a.retry_after and int(a.retry_after) >= 1 for a in answers if a.status == 503)
    assert all("database" in a.body["detail"] for a in answers if a.status == 503)
    slowest = max(a.ended - a.started for a in answers)
    assert slowest < TIMEOUT_S + 2.0, f"a request took {slowest:.1f} s"
    # Recovery without a restart of the service.
    first_ok = min(a.ended for a in after if a.status == 200)
    assert first_ok - t.restarted < 10.0
    assert t.ready_during_outage == 503 and t.ready_after == 200
    # Every flagged 200 has its item; no item exists without a flagged 200.
    flagged = {
        a.body["encounter_id"]: a.body["review_item_id"]
        for a in answers
        if a.status == 200 and a.body["flagged"]
    }
    assert flagged and stored == flagged
    print(
        f"\n{len(answers)} answers: {len(outage)} during the outage "
        f"({sum(a.status == 503 for a in outage)} 503, the rest unflagged 200s), slowest "
        f"{slowest * 1000:.0f} ms, first 200 {(first_ok - t.restarted) * 1000:.0f} ms after "
        f"restart, {len(flagged)} flagged = {len(stored)} items"
    )


def test_a_hung_database_answers_503_within_the_timeout(
    model_dir: Path, tmp_path: Path, encounters: list[dict[str, Any]]
) -> None:
    """PostgreSQL frozen (SIGSTOP): pooled connections hang, yet every answer comes in time.

    The key cache is off here so that every request waits on the frozen database.
    """
    if postgres_bindir() is None:
        pytest.skip("no PostgreSQL binaries (install Debian's postgresql)")
    with postgres() as pg:
        keys = prepare_database(pg.url)
        headers = {"Authorization": f"Bearer {keys['ehr']}"}
        env = {"TRIAGE_DATABASE_TIMEOUT_S": str(TIMEOUT_S), "TRIAGE_AUTH__KEY_CACHE_TTL_S": "0"}
        with triage_serve(
            database_url=pg.url, model_dir=model_dir, log_dir=tmp_path, extra_env=env
        ) as server:

            async def burst(client: httpx.AsyncClient, tag: str) -> list[tuple[int, float]]:
                async def one(k: int) -> tuple[int, float]:
                    body = {**encounters[k], "encounter_id": f"{tag}-{k}"}
                    started = time.monotonic()
                    answer = await client.post("/predict", json=body, headers=headers)
                    return answer.status_code, time.monotonic() - started

                return list(await asyncio.gather(*(one(k) for k in range(8))))

            async def run() -> tuple[list[tuple[int, float]], ...]:
                async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
                    warm = await burst(client, "warm")  # fills the connection pool
                    pg.freeze()
                    try:
                        frozen = await burst(client, "frozen")
                        started = time.monotonic()
                        ready = (await client.get("/readyz")).status_code
                        ready_s = time.monotonic() - started
                    finally:
                        pg.thaw()
                    await asyncio.sleep(0.5)
                    thawed = await burst(client, "thawed")
                return warm, frozen, [(ready, ready_s)], thawed

            warm, frozen, ready, thawed = asyncio.run(run())
    assert {s for s, _ in warm} == {200}
    assert {s for s, _ in frozen} == {503}, frozen
    slowest = max(t for _, t in frozen + ready)
    assert slowest < TIMEOUT_S * 2 + 2.0, f"a request hung for {slowest:.1f} s"
    assert ready[0][0] == 503
    assert {s for s, _ in thawed} == {200}
    print(f"\nfrozen database: 8 requests all 503, slowest {slowest * 1000:.0f} ms")
