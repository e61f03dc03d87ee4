"""Replicas behind a real balancer on one PostgreSQL: what a Kubernetes deployment relies on.

Each test prints what it measured (the scaling table, how long the balancer took to drop a
killed replica); the figures go to the terminal even when pytest captures output.
"""

import dataclasses
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select, text

from app.db.schema import SchemaCheck
from app.review.models import ReviewItem
from bench.balancer import balancer
from bench.cluster import report, scaling
from bench.load import Result, lost_cases
from tests.cluster.conftest import Cluster
from tests.support import published_rows

pytestmark = [pytest.mark.data, pytest.mark.postgres, pytest.mark.slow, pytest.mark.cluster]

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
CONNECTIONS = 48


def _say(capsys: pytest.CaptureFixture[str], *lines: str) -> None:
    with capsys.disabled():
        print("\n" + "\n".join(lines), flush=True)


def _failed(result: Result) -> int:
    return sum(n for code, n in result.statuses.items() if code != 200) + result.errors


class Background:
    """wrk closed loops through the balancer in a thread, one after another until `stop()`
    (or a single run of `duration_s`)."""

    def __init__(
        self, cluster: Cluster, run: str, *, base: str, duration_s: float | None = None
    ) -> None:
        self.results: list[Result] = []
        self._stop = threading.Event()
        load = dataclasses.replace(cluster.load, duration_s=duration_s or 4.0)

        def loop() -> None:
            while not self._stop.is_set():
                label = f"{run}{len(self.results)}"
                key = cluster.keys["ehr"]
                self.results.append(load.closed(base, key, label, connections=CONNECTIONS))
                if duration_s is not None:
                    return

        self._thread = threading.Thread(target=loop)
        self._thread.start()

    def join(self) -> list[Result]:
        """Stop after the run in progress; every run's result."""
        self._stop.set()
        self._thread.join()
        assert self.results, "the load run failed"
        return self.results


def _items(url: str, encounter_ids: list[str]) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                select(ReviewItem.encounter_id, func.count())
                .where(ReviewItem.encounter_id.in_(encounter_ids))
                .group_by(ReviewItem.encounter_id)
            )
            return {row[0]: int(row[1]) for row in conn.execute(query)}
    finally:
        engine.dispose()


def test_replicas_wait_for_the_one_migration_job(cluster: Cluster) -> None:
    assert len(cluster.waiting) == len(cluster.replicas)
    for answer in cluster.waiting:  # model loaded, schema missing: up but not ready
        assert answer["status_code"] == 503 and answer["schema"] == "missing", answer
    check = SchemaCheck.from_migrations()
    assert check is not None
    engine = create_engine(cluster.url)
    with engine.connect() as conn:
        assert {r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))} == (
            check.heads
        )
    engine.dispose()
    for replica in cluster.replicas:  # ready once the job is done, without migrating themselves
        assert httpx.get(replica.base_url + "/readyz").json()["schema"] == "current"


def test_throughput_through_the_balancer_with_one_two_three_replicas(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.cluster import bare_replica, running

    bare = [bare_replica(f"b{i + 1}", cluster.load.work_dir) for i in range(len(cluster.replicas))]
    with running(bare):
        steps = scaling(
            cluster.load,
            cluster.replicas,
            bare,
            key=cluster.keys["ehr"],
            connections=CONNECTIONS,
            database_pids=cluster.server.pids,
            database_url=cluster.url,
        )
    _say(capsys, *report(steps, cluster.url))
    for step in steps:
        assert _failed(step.result) == 0, step.result.statuses
        assert all(step.sessions.values()), f"a replica took no traffic: {step.sessions}"
        if step.kind == "service":
            flagged, _, mismatches, _ = lost_cases(cluster.url, step.result)
            assert flagged > 0 and mismatches == 0


def test_a_retried_encounter_through_other_replicas_keeps_its_one_item(
    cluster: Cluster, data_file: Any
) -> None:
    rows = [
        {**r, "encounter_id": f"retry-{i}"} for i, r in enumerate(published_rows(data_file, 120))
    ]
    headers = {"Authorization": f"Bearer {cluster.keys['ehr']}"}
    urls = [r.base_url for r in cluster.replicas] + [cluster.front.base_url]

    def post(url: str) -> dict[str, Any]:
        answer = httpx.post(
            f"{url}/predict/batch", json={"encounters": rows}, headers=headers, timeout=60
        )
        assert answer.status_code == 200, answer.text
        return {p["encounter_id"]: p["review_item_id"] for p in answer.json()["predictions"]}

    # The same encounters at once through every replica and the balancer, then once more.
    with ThreadPoolExecutor(len(urls)) as pool:
        answers = [*pool.map(post, urls), post(urls[0])]
    assert all(a == answers[0] for a in answers)
    flagged = [e for e, item in answers[0].items() if item is not None]
    assert flagged
    assert _items(cluster.url, list(answers[0])) == dict.fromkeys(flagged, 1)


def _flag(cluster: Cluster, data_file: Any, prefix: str, n: int) -> list[int]:
    rows = [
        {**r, "encounter_id": f"{prefix}-{i}"} for i, r in enumerate(published_rows(data_file, 200))
    ]
    answer = httpx.post(
        f"{cluster.front.base_url}/predict/batch",
        json={"encounters": rows},
        headers={"Authorization": f"Bearer {cluster.keys['ehr']}"},
        timeout=60,
    )
    ids = [p["review_item_id"] for p in answer.json()["predictions"] if p["flagged"]]
    assert len(ids) >= n
    return ids[:n]


def test_a_clinician_signed_in_on_one_replica_works_on_another(cluster: Cluster) -> None:
    r1, r2, r3 = (r.base_url for r in cluster.replicas)
    with httpx.Client(timeout=10) as browser:
        form = browser.get(f"{r1}/review/sign-in")
        token = CSRF.search(form.text)[1]  # type: ignore[index]
        signed = browser.post(
            f"{r1}/review/sign-in", data={"api_key": cluster.keys["ada"], "csrf_token": token}
        )
        assert signed.status_code == 303
        page = browser.get(f"{r2}/review")
        assert page.status_code == 200 and "Signed in as <strong>Dr Ada Rivera" in page.text
        token = CSRF.search(page.text)[1]  # type: ignore[index]
        assert browser.post(f"{r3}/review/sign-out", data={"csrf_token": token}).status_code == 303
        cookie = dict(signed.cookies)
    # The signed-out session ends on every replica, even replayed from before the sign-out.
    replayed = httpx.get(f"{r1}/review", cookies=cookie)
    assert replayed.status_code == 303 and replayed.headers["location"] == "/review/sign-in"


def test_two_clinicians_claiming_through_different_replicas_one_wins(
    cluster: Cluster, data_file: Any
) -> None:
    r1, r2, _ = (r.base_url for r in cluster.replicas)
    clinicians = [(r1, cluster.keys["ada"]), (r2, cluster.keys["ben"])]
    for item in _flag(cluster, data_file, "claim", 5):
        start = threading.Barrier(2)

        def claim(who: tuple[str, str], item: int = item, start: Any = start) -> httpx.Response:
            url, key = who
            start.wait()
            return httpx.post(
                f"{url}/review-queue/{item}/claim", headers={"Authorization": f"Bearer {key}"}
            )

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(claim, clinicians))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        winner = next(a for a in answers if a.status_code == 200).json()["assignee"]
        holder = httpx.get(
            f"{r2}/review-queue/{item}", headers={"Authorization": f"Bearer {cluster.keys['ben']}"}
        )
        assert holder.json()["assignee"] == winner


def test_a_killed_replica_is_dropped_and_rejoins(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    victim = cluster.replicas[1]
    load = Background(cluster, "kill", base=cluster.front.base_url, duration_s=8.0)
    time.sleep(3.0)
    held = int(cluster.front.servers()[victim.name]["scur"])
    victim.kill()
    dropped_s = cluster.front.wait_status(victim.name, "DOWN", timeout_s=15)
    [result] = load.join()
    flagged, items, mismatches, cut_off = lost_cases(cluster.url, result)
    taken = cluster.front.sessions()[victim.name]
    victim.start()
    rejoined_s = cluster.front.wait_status(victim.name, "UP", timeout_s=30)
    after = cluster.load.closed(
        cluster.front.base_url, cluster.keys["ehr"], "rejoined", connections=CONNECTIONS
    )
    _say(
        capsys,
        f"SIGKILL of {victim.name} under load: it held {held} requests, clients saw "
        f"{_failed(result)} fail of {result.requests}; the balancer dropped it after "
        f"{dropped_s:.1f} s; flagged answers {flagged}, items {items} ({cut_off} of cut-off "
        f"requests), mismatches {mismatches}; restarted, back in the pool in {rejoined_s:.1f} s",
    )
    assert _failed(result) <= held
    assert flagged > 0 and mismatches == 0
    assert _failed(after) == 0 and cluster.front.sessions()[victim.name] > taken


def test_a_rolling_restart_under_load_loses_no_request(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    # NOTE: a balancer that never retries, as a Kubernetes Service: each replica's drain
    # (TRIAGE_SHUTDOWN_DRAIN_S) alone keeps new requests away from it before it stops.
    ports = [r.port for r in cluster.replicas]
    with balancer(ports, work_dir=cluster.load.work_dir, retries=False) as service:
        load = Background(cluster, "rolling", base=service.base_url)
        time.sleep(2.0)
        timeline = []
        for replica in cluster.replicas:
            began = time.monotonic()
            code = replica.stop()  # SIGTERM: not ready, drain, finish what it holds, exit
            assert code in (0, -15), replica.process.log() if replica.process else ""
            replica.start()
            service.wait_status(replica.name, "UP", timeout_s=30)
            cluster.front.wait_status(replica.name, "UP", timeout_s=30)
            timeline.append(f"{replica.name} back in {time.monotonic() - began:.1f} s")
        results = load.join()
    checks = [lost_cases(cluster.url, result) for result in results]
    failed = sum(_failed(result) for result in results)
    _say(
        capsys,
        f"rolling restart under load, balancer without retries ({'; '.join(timeline)}): "
        f"{sum(r.requests for r in results)} requests in {len(results)} wrk runs, {failed} "
        f"failed; flagged {sum(c[0] for c in checks)}, items {sum(c[1] for c in checks)}, "
        f"mismatches {sum(c[2] for c in checks)}",
    )
    assert failed == 0 and all(c[2] == 0 for c in checks) and sum(c[0] for c in checks) > 0
