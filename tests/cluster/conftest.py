"""Three `triage serve` replicas on one PostgreSQL behind HAProxy, started once for the module,
in a deployment's order: replicas first (they wait), then the migration job, then traffic."""

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.balancer import Balancer, balancer, haproxy_binary
from bench.cluster import Replica, load_for, running, service_replica
from bench.load import Load
from tests.support import ROOT, Postgres, postgres, postgres_bindir, published_rows

REPLICAS = 3
ROWS = 2000
# NOTE: the manifests' drain, above this balancer's two failed checks half a second apart.
DRAIN_S = "2"


@dataclass
class Cluster:
    """The replicas, the balancer in front of them, the database and what the start-up saw."""

    replicas: list[Replica]
    front: Balancer
    server: Postgres
    keys: dict[str, str]
    load: Load
    waiting: list[dict[str, Any]] = field(default_factory=list)  # `/readyz` before the job

    @property
    def url(self) -> str:
        """The database URL every replica shares."""
        return self.server.url


def _waiting_for_schema(replica: Replica, timeout_s: float = 120.0) -> dict[str, Any]:
    """Poll `/readyz` until the model is loaded; return that answer (the schema is missing)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert replica.process is not None and replica.process.popen.poll() is None
        try:
            answer = httpx.get(replica.base_url + "/readyz", timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if answer.json()["model_loaded"]:
            return {"status_code": answer.status_code, **answer.json()}
        time.sleep(0.2)
    raise AssertionError(f"{replica.name} did not load its model:\n{replica.process.log()}")


def _keys(url: str) -> dict[str, str]:
    from app.auth.models import Role
    from app.auth.service import create_key
    from app.db.session import Database

    database = Database(url)
    wanted = [
        ("ehr", "EHR", Role.EHR),
        ("ada", "Dr Ada Rivera", Role.CLINICIAN),
        ("ben", "Dr Ben Okafor", Role.CLINICIAN),
    ]
    try:
        with database.session() as session:
            return {
                label: create_key(session=session, name=name, role=role)[1]
                for label, name, role in wanted
            }
    finally:
        database.dispose()


@pytest.fixture(scope="module")
def cluster(data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Replicas started before the schema exists, one `triage db upgrade`, then HAProxy."""
    if haproxy_binary() is None or shutil.which("wrk") is None:
        pytest.skip("needs Debian's haproxy and wrk (bash .ci/system-deps)")
    if postgres_bindir() is None:
        pytest.skip("no PostgreSQL binaries (install Debian's postgresql)")
    work_dir = tmp_path_factory.mktemp("cluster")
    load = load_for(published_rows(data_file, ROWS), work_dir, duration_s=4.0)
    with postgres() as server:
        replicas = [
            service_replica(f"r{i + 1}", server.url, work_dir, TRIAGE_SHUTDOWN_DRAIN_S=DRAIN_S)
            for i in range(REPLICAS)
        ]
        with running(replicas, ready=False):
            waiting = [_waiting_for_schema(r) for r in replicas]
            job = subprocess.run(
                [sys.executable, "-m", "app", "db", "upgrade"],
                env={**os.environ, "TRIAGE_DATABASE_URL": server.url},
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert job.returncode == 0, job.stderr
            for replica in replicas:
                assert replica.process is not None
                replica.process.wait_ready(timeout_s=60)
            with balancer([r.port for r in replicas], work_dir=work_dir) as front:
                yield Cluster(replicas, front, server, _keys(server.url), load, waiting)
