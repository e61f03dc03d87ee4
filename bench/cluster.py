"""Replicas of `triage serve` on one PostgreSQL behind HAProxy, as a Kubernetes Service runs
them: requests/s through the balancer with 1, 2, ... replicas, next to the balancer in front of
as many bare apps (`bench.bare`: the same HTTP stack answering a constant).

    python bench/cluster.py [--duration 5] [--connections 64] [--replicas 3]

Each replica is one `triage serve` process (one worker) on a port of its own. Besides the rate
it reports the CPU time the replicas and PostgreSQL spent per request, which is what sizing a
deployment needs: on a shared machine the rate says how busy the machine was, the CPU time per
request does not. After every service run each flagged answer is checked against its review
item (`bench.load.lost_cases`).
"""

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.balancer import balancer
from bench.load import Load, Result, lost_cases, write_templates
from tests.support import (
    LOOPBACK,
    Process,
    data_path,
    free_port,
    postgres,
    prepare_database,
    published_rows,
    spawn,
)

_TICKS = os.sysconf("SC_CLK_TCK")
SESSION_SECRET = "cluster-test-session-secret-0123456789"


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time the processes `pids` have used so far."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICKS


@dataclass
class Replica:
    """One serving process on a port of its own, started, killed and restarted at will."""

    name: str
    port: int
    cmd: list[str]
    env: dict[str, str]
    work_dir: Path
    process: Process | None = None
    starts: int = 0
    _context: Any = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:<port>`."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, *, ready: bool = True) -> None:
        """Start the process (again, on the same port); wait for `/readyz` unless not `ready`."""
        self.starts += 1
        log_dir = self.work_dir / f"{self.name}-{self.starts}"
        self._context = spawn(self.cmd, env=self.env, port=self.port, log_dir=log_dir)
        self.process = self._context.__enter__()
        if ready:
            self.process.wait_ready()

    def kill(self) -> None:
        """SIGKILL, as the kernel's out-of-memory killer or a node failure would."""
        assert self.process is not None
        os.killpg(self.process.popen.pid, signal.SIGKILL)
        self.process.popen.wait(10)
        self.stop()

    def stop(self) -> int:
        """SIGTERM and wait for the process to drain and exit; return its exit status."""
        if self._context is None or self.process is None:
            return 0
        self._context.__exit__(None, None, None)
        self._context = None
        return int(self.process.popen.returncode)

    def cpu_seconds(self) -> float:
        """CPU time this start of the process has used."""
        return cpu_seconds([self.process.popen.pid]) if self.process else 0.0


def service_replica(name: str, database_url: str, work_dir: Path, **env: str) -> Replica:
    """A `triage serve` replica with the settings every replica of a deployment shares."""
    port = free_port()
    cmd = [sys.executable, "-m", "app", "serve", "--host", LOOPBACK, "--port", str(port)]
    shared = {
        "TRIAGE_DATABASE_URL": database_url,
        "TRIAGE_INFERENCE__DEVICE": "cpu",
        "TRIAGE_AUTH__SESSION_SECRET": SESSION_SECRET,
        "TRIAGE_AUTH__SECURE_COOKIES": "false",  # NOTE: plain HTTP on the loopback interface
        **env,
    }
    return Replica(name, port, [*cmd, "--workers", "1"], shared, work_dir)


def bare_replica(name: str, work_dir: Path) -> Replica:
    """The bare app (the HTTP stack's ceiling) as one replica."""
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bare", "--host", LOOPBACK, "--port", str(port)]
    return Replica(name, port, cmd, {}, work_dir)


@contextlib.contextmanager
def running(replicas: Sequence[Replica], *, ready: bool = True) -> Iterator[list[Replica]]:
    """Start every replica at once (they load their models side by side); stop them after."""
    try:
        for replica in replicas:
            replica.start(ready=False)
        if ready:
            for replica in replicas:
                assert replica.process is not None
                replica.process.wait_ready(timeout_s=120)
        yield list(replicas)
    finally:
        for replica in replicas:
            replica.stop()


def client_connections(database_url: str) -> int:
    """Client connections PostgreSQL holds now, this one's not counted."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


@dataclass
class Step:
    """One closed-loop run through the balancer in front of `replicas` servers."""

    kind: str  # "service" or "bare"
    replicas: int
    result: Result
    server_cpu_s: float
    database_cpu_s: float
    balancer_cpu_s: float
    sessions: dict[str, int]
    database_connections: int = 0  # client connections open on PostgreSQL after the run


def measure(
    load: Load,
    kind: str,
    group: Sequence[Replica],
    *,
    key: str,
    connections: int,
    database_pids: Callable[[], Sequence[int]] = list,
    database_url: str | None = None,
) -> Step:
    """Warm up, then one closed loop through a fresh balancer in front of `group`."""
    tag = f"{kind[:2]}{len(group)}"
    with balancer([r.port for r in group], work_dir=load.work_dir) as front:
        warm = dataclasses.replace(load, duration_s=1.0)
        warm.closed(front.base_url, key, f"{tag}warm", connections=connections)
        # NOTE: the pools opened their connections during the warm-up; these backends serve it.
        pids, haproxy = database_pids(), [front.process.popen.pid]
        before = (sum(r.cpu_seconds() for r in group), cpu_seconds(pids), cpu_seconds(haproxy))
        result = load.closed(front.base_url, key, tag, connections=connections)
        after = (sum(r.cpu_seconds() for r in group), cpu_seconds(pids), cpu_seconds(haproxy))
        used = [b - a for a, b in zip(before, after, strict=True)]
        connections = client_connections(database_url) if database_url else 0
        return Step(kind, len(group), result, *used, front.sessions(), connections)


def scaling(
    load: Load,
    service: Sequence[Replica],
    bare: Sequence[Replica],
    *,
    key: str,
    connections: int,
    database_pids: Callable[[], Sequence[int]] = list,
    database_url: str | None = None,
) -> list[Step]:
    """Service and bare app through the balancer with 1..len(service) replicas, side by side."""
    steps = []
    for n in range(1, len(service) + 1):
        steps.append(
            measure(
                load,
                "service",
                service[:n],
                key=key,
                connections=connections,
                database_pids=database_pids,
                database_url=database_url,
            )
        )
        steps.append(measure(load, "bare", bare[:n], key="none", connections=connections))
    return steps


def report(steps: Sequence[Step], database_url: str | None) -> list[str]:
    """The table: rate, latency, scaling against one replica, ratio to the bare app, CPU per
    request; with `database_url`, each service run's flagged answers checked against its items."""
    first = {s.kind: s.result.rate for s in steps if s.replicas == 1}
    bare = {s.replicas: s.result.rate for s in steps if s.kind == "bare"}
    lines = [
        f"{'through HAProxy':<18}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'x 1 rep':>8}"
        f"{'vs bare':>8}{'CPU ms/req: server':>19}{'DB':>6}{'HAProxy':>8}{'DB conns':>9}"
        "  non-200  flagged/items"
    ]
    for s in steps:
        r = s.result
        bad = sum(n for code, n in r.statuses.items() if code != 200) + r.errors
        n = max(1, r.requests)
        per = f"{1000 * s.server_cpu_s / n:>19.2f}"
        db = f"{1000 * s.database_cpu_s / n:>6.2f}" if s.kind == "service" else f"{'-':>6}"
        db += f"{1000 * s.balancer_cpu_s / n:>8.2f}"
        db += f"{s.database_connections:>9}" if s.kind == "service" else f"{'-':>9}"
        vs_bare = f"{r.rate / bare[s.replicas]:>8.2f}" if s.kind == "service" else f"{'':>8}"
        checked = ""
        if s.kind == "service" and database_url is not None:
            flagged, items, mismatches, cut_off = lost_cases(database_url, r)
            checked = f"  {flagged}/{items} ({mismatches} mismatched, {cut_off} cut off)"
        lines.append(
            f"{s.kind + ' x' + str(s.replicas):<18}{r.rate:>8.0f}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}"
            f"{r.rate / first[s.kind]:>8.2f}{vs_bare}{per}{db}{bad:>9}{checked}"
        )
    return lines


def load_for(rows: Sequence[dict[str, Any]], work_dir: Path, duration_s: float) -> Load:
    """Single-encounter `POST /predict` bodies driven by wrk (`bench.load`)."""
    single = write_templates(work_dir / "single.txt", rows, 1)
    return Load(single, single, 1, duration_s, (64,), work_dir, use_wrk=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Start PostgreSQL, the replicas and the bare apps; print the scaling table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--pool-size", type=int, default=None, help="TRIAGE_DATABASE_POOL_SIZE")
    parser.add_argument("--max-overflow", type=int, default=None)
    args = parser.parse_args(argv)
    env = {}
    if args.pool_size is not None:
        env["TRIAGE_DATABASE_POOL_SIZE"] = str(args.pool_size)
    if args.max_overflow is not None:
        env["TRIAGE_DATABASE_MAX_OVERFLOW"] = str(args.max_overflow)
    work_dir = Path(tempfile.mkdtemp(prefix="triage-cluster-"))
    load = load_for(published_rows(data_path(), args.rows), work_dir, args.duration)
    with postgres() as server:
        keys = prepare_database(server.url)
        service = [service_replica(f"r{i + 1}", server.url, work_dir) for i in range(args.replicas)]
        bare = [bare_replica(f"b{i + 1}", work_dir) for i in range(args.replicas)]
        with running(service), running(bare):
            steps = scaling(
                load,
                service,
                bare,
                key=keys["ehr"],
                connections=args.connections,
                database_pids=server.pids,
                database_url=server.url,
            )
        print(f"{os.cpu_count()} CPUs shared by wrk, HAProxy, PostgreSQL and every replica")
        print("\n".join(report(steps, server.url)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
