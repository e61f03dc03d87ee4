"""Load test: `triage serve` on SQLite and PostgreSQL, 1 and 2 workers, next to the bare ceiling.

    python bench/load.py [--duration 10] [--workers 1 2] [--databases sqlite postgresql]

For each configuration it measures, with real encounters from the data file (each request with
an encounter id of its own):
  - single-encounter `POST /predict`, closed loop at each of `--connections` (32, 64 and 128
    by default): requests/s and p50/p99 latency at each, and the saturating rate, the highest
    of them, with its ratio to a bare FastAPI app that parses the same body types and answers
    a constant, served by uvicorn with the same settings and workers and swept the same way
    (the target's reference), and to the same endpoints as a plain ASGI callable (no
    framework at all);
  - open loop at 80% of that saturating rate: p50/p99 measured from each request's scheduled
    time (no coordinated omission);
  - `POST /predict/batch` with `--batch-size` encounters per request: encounters/s;
and after every run checks that each `flagged: true` answer has exactly one review item and
that no item of the run exists without such an answer.

Load comes from `wrk` (Debian package) when it is installed, the open loop included (its
pacing and latencies are in load.lua), else from a Python client. Everything runs on
127.0.0.1; the load generator shares the CPU with the server.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support import (
    LOOPBACK,
    data_path,
    free_port,
    postgres,
    prepare_database,
    published_rows,
    spawn,
    triage_serve,
)

LUA = Path(__file__).with_name("load.lua")
PLACEHOLDER = "@@ID@@"


@dataclass
class Result:
    """One measured phase."""

    label: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    flagged: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    unanswered: set[str] = field(default_factory=set)
    per_request: int = 1
    connections: list[int] = field(default_factory=list)  # per serving process, mid-run
    load_connections: int = 0  # the generator's connections in a closed loop

    @property
    def rate(self) -> float:
        """Requests per second."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        """Answers with status 200."""
        return self.statuses.get(200, 0)


def write_templates(path: Path, rows: Sequence[dict[str, Any]], per_body: int) -> Path:
    """One body per line: single encounters, or batches of `per_body` encounters."""
    lines = []
    if per_body == 1:
        lines = [json.dumps({**row, "encounter_id": PLACEHOLDER}) for row in rows]
    else:
        for start in range(0, len(rows) - per_body + 1, per_body):
            chunk = [{**row, "encounter_id": PLACEHOLDER} for row in rows[start : start + per_body]]
            lines.append(json.dumps({"encounters": chunk}))
    path.write_text("\n".join(lines) + "\n")
    return path


def wrk(
    base_url: str,
    path: str,
    *,
    bodies: Path,
    key: str,
    run: str,
    connections: int,
    duration_s: float,
    max_requests: int,
    work_dir: Path,
    rate: float | None = None,
) -> Result:
    """A `wrk` run (one thread, `connections` keep-alive connections): a closed loop, or an
    open loop at `rate` requests/s with latency from each request's due time (see load.lua)."""
    out = work_dir / f"wrk-{run}.txt"
    env = {
        **os.environ,
        "WRK_BODIES": str(bodies),
        "WRK_PATH": path,
        "WRK_KEY": key,
        "WRK_RUN": run,
        "WRK_OUT": str(out),
        "WRK_MAX_REQUESTS": str(max_requests),
        **({"WRK_RATE": f"{rate:.3f}"} if rate else {}),
    }
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--timeout", "30s"]
    subprocess.run(
        [*cmd, "-s", str(LUA), base_url],
        env=env,
        check=True,
        capture_output=True,
        timeout=duration_s + 90,
    )
    result = Result(label=run, requests=0, seconds=0.0, p50_ms=0.0, p99_ms=0.0)
    for line in out.read_text().splitlines():
        name, *values = line.split()
        if name == "requests":
            result.requests = int(values[0])
        elif name == "duration_us":
            result.seconds = int(values[0]) / 1e6
        elif name in ("p50_us", "p99_us"):
            setattr(result, name.replace("_us", "_ms"), int(values[0]) / 1000)
        elif name == "errors":
            result.errors = int(values[0])
        elif name == "status":
            code = int(values[0])
            result.statuses[code] = result.statuses.get(code, 0) + int(values[1])
        elif name == "unanswered":
            result.unanswered.add(values[0])
        elif name == "flagged":
            result.duplicates += values[0] in result.flagged
            result.flagged[values[0]] = int(values[1])
    return result


FLAGGED = re.compile(rb'"encounter_id":"([^"]*)"[^}]*?"flagged":true[^}]*?"review_item_id":(\d+)')
ANSWERED = re.compile(rb'"encounter_id":"([^"]*)-\d+"')


async def _exchange(
    conn: tuple[asyncio.StreamReader, asyncio.StreamWriter], raw: bytes
) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a keep-alive connection; the answer's status and body."""
    reader, writer = conn
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return int(head[9:12]), await reader.readexactly(length)


async def _python_load(
    base_url: str,
    path: str,
    *,
    templates: Sequence[str],
    key: str,
    run: str,
    connections: int,
    duration_s: float,
    max_requests: int,
    rate: float | None,
) -> Result:
    """Closed loop (`rate` None: `connections` loops) or open loop at `rate` requests/s.

    A minimal keep-alive HTTP/1.1 client on asyncio streams (several times cheaper per request
    than a full client library, which matters when it shares two cores with the server).
    Open-loop latency runs from each request's scheduled time, so waiting for a free
    connection counts (no coordinated omission).
    """
    result = Result(label=run, requests=0, seconds=0.0, p50_ms=0.0, p99_ms=0.0)
    latencies: list[float] = []
    host, port = base_url.rsplit("/", 1)[1].split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    loop = asyncio.get_running_loop()
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, int(port), limit=2**24))
    counter = 0

    async def one(scheduled: float) -> None:
        nonlocal counter
        counter += 1
        parts = templates[counter % len(templates)].split(PLACEHOLDER)
        ids = [f"{run}-0-{counter}-{k}" for k in range(1, len(parts))]
        body = "".join(p + i for p, i in zip(parts, [*ids, ""], strict=True)).encode()
        conn = await pool.get()
        try:
            status, answer = await _exchange(conn, head + b"%d\r\n\r\n" % len(body) + body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            result.errors += 1
            conn = await asyncio.open_connection(host, int(port), limit=2**24)
            return
        finally:
            pool.put_nowait(conn)
        latencies.append(loop.time() - scheduled)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        for found in FLAGGED.finditer(answer):
            encounter_id = found[1].decode()
            result.duplicates += encounter_id in result.flagged
            result.flagged[encounter_id] = int(found[2])

    start = loop.time()
    deadline = start + duration_s
    if rate is None:

        async def worker() -> None:
            while loop.time() < deadline and counter < max_requests:
                await one(loop.time())

        await asyncio.wait_for(
            asyncio.gather(*(worker() for _ in range(connections))), duration_s + 60
        )
    else:
        tasks = []
        for i in range(min(max_requests, int(rate * duration_s))):
            scheduled = start + i / rate
            if scheduled > loop.time():
                await asyncio.sleep(scheduled - loop.time())
            tasks.append(asyncio.create_task(one(scheduled)))
        await asyncio.wait_for(asyncio.gather(*tasks), duration_s + 60)
    result.seconds = loop.time() - start
    while not pool.empty():
        pool.get_nowait()[1].close()
    result.requests = len(latencies)
    if latencies:
        ordered = sorted(latencies)
        result.p50_ms = ordered[len(ordered) // 2] * 1000
        result.p99_ms = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    return result


@dataclass
class Load:
    """What every phase shares: the bodies, the key and the generator to use."""

    single: Path
    batch: Path
    batch_size: int
    duration_s: float
    connections: tuple[int, ...]
    work_dir: Path
    use_wrk: bool
    low_n: int | None = None
    results: list[tuple[str, str, Result]] = field(default_factory=list)

    def saturate(self, base_url: str, key: str, tag: str) -> list[Result]:
        """`/predict` in a closed loop at each connection count, fewest first.

        NOTE: a micro-batching server keeps gaining past the connection count that saturates
        a server answering each request alone (its batches grow with the requests in flight),
        so one fixed count would measure it below its saturating rate; every server, the
        reference apps included, is swept over the same counts.
        """
        return [
            self.closed(base_url, key, f"{tag}c{count}", connections=count)
            for count in self.connections
        ]

    def closed(
        self,
        base_url: str,
        key: str,
        run: str,
        *,
        batch: bool = False,
        query: str = "",
        connections: int | None = None,
    ) -> Result:
        """Load `/predict` (or `/predict/batch`) in a closed loop."""
        path, bodies = ("/predict/batch", self.batch) if batch else ("/predict", self.single)
        path += query
        if connections is None:
            connections = 2 if batch else self.connections[0]
        if self.use_wrk:
            result = wrk(
                base_url,
                path,
                bodies=bodies,
                key=key,
                run=run,
                connections=connections,
                duration_s=self.duration_s,
                max_requests=1_000_000,
                work_dir=self.work_dir,
            )
        else:
            result = asyncio.run(
                _python_load(
                    base_url,
                    path,
                    templates=bodies.read_text().splitlines(),
                    key=key,
                    run=run,
                    connections=connections,
                    duration_s=self.duration_s,
                    max_requests=1_000_000,
                    rate=None,
                )
            )
        result.per_request = self.batch_size if batch else 1
        result.load_connections = connections
        return result

    def open(self, base_url: str, key: str, run: str, rate: float, connections: int) -> Result:
        """Paced `/predict` at `rate` requests/s over `connections`; latency from each request's
        scheduled time."""
        # NOTE: wrk paces in a few microseconds a request; the Python client needs most of a
        # core at these rates, taken from the server it measures.
        kwargs = {
            "key": key,
            "run": run,
            "connections": connections,
            "duration_s": self.duration_s,
            "max_requests": int(rate * self.duration_s) + 1,
            "rate": rate,
        }
        if self.use_wrk:
            return wrk(base_url, "/predict", bodies=self.single, work_dir=self.work_dir, **kwargs)
        templates = self.single.read_text().splitlines()
        return asyncio.run(_python_load(base_url, "/predict", templates=templates, **kwargs))


def lost_cases(database_url: str, result: Result) -> tuple[int, int, int, int]:
    """Flagged answers, review items of the run, mismatches, items of cut-off requests.

    An item whose request was still in flight when the generator stopped has no answer to
    match; it is counted apart (the EHR would retry and get the same item back).
    """
    from sqlalchemy import create_engine, select

    from app.review.models import ReviewItem

    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = select(ReviewItem.encounter_id, ReviewItem.id).where(
                ReviewItem.encounter_id.like(f"{result.label}-%")
            )
            stored = {row[0]: int(row[1]) for row in conn.execute(query)}
    finally:
        engine.dispose()
    cut_off = {
        k for k in stored if k not in result.flagged and k.rsplit("-", 1)[0] in result.unanswered
    }
    mismatches = sum(stored.get(k) != v for k, v in result.flagged.items())
    mismatches += sum(k not in result.flagged and k not in cut_off for k in stored)
    return len(result.flagged), len(stored), mismatches + result.duplicates, len(cut_off)


def _bare(workers: int, work_dir: Path, *, plain: bool = False) -> Any:
    port = free_port()
    cmd = [sys.executable, "-m", "bench.bare", "--host", LOOPBACK, "--port", str(port)]
    cmd += ["--workers", str(workers), *(["--plain"] if plain else [])]
    return spawn(cmd, env={}, port=port, log_dir=work_dir)


def saturating(sweep: Sequence[Result]) -> Result:
    """The closed-loop run of a sweep with the highest rate."""
    return max(sweep, key=lambda result: result.rate)


@dataclass
class Reference:
    """One reference app's single-encounter sweep and batch run."""

    sweep: list[Result]
    batch: Result

    def single_at(self, connections: int) -> Result:
        """The sweep's run at `connections`."""
        return next(r for r in self.sweep if r.load_connections == connections)


@dataclass
class Ceilings:
    """The bare FastAPI app (the target's reference) and plain ASGI, at one worker count."""

    fastapi: Reference
    plain: Reference


def _ceiling(load: Load, workers: int, *, plain: bool) -> Reference:
    tag = f"{'asgi' if plain else 'bare'}{workers}"
    with _bare(workers, load.work_dir, plain=plain) as bare:
        bare.wait_ready()
        load.closed(bare.base_url, "none", f"{tag}warm")
        return Reference(
            load.saturate(bare.base_url, "none", tag),
            load.closed(bare.base_url, "none", f"{tag}batch", batch=True),
        )


def measure_service(
    load: Load, *, backend: str, url: str, workers: int, model_dir: Path | None
) -> None:
    """All phases against one `triage serve` configuration."""
    keys = prepare_database(url)
    tag = f"{backend[:2]}{workers}"
    with triage_serve(
        database_url=url, workers=workers, model_dir=model_dir, log_dir=load.work_dir
    ) as server:
        base, key = server.base_url, keys["ehr"]
        load.closed(base, key, f"{tag}warm")  # warm-up: connections, caches, allocator
        sweep = load.saturate(base, key, tag)
        saturated = saturating(sweep)
        # NOTE: as many connections as the closed loop that saturated it: the server has shown
        # it keeps up with that many requests in flight.
        count = saturated.load_connections
        paced = load.open(base, key, f"{tag}open", 0.8 * saturated.rate, count)
        print(
            f"  {backend} w{workers}: open loop paced at {0.8 * saturated.rate:.0f} req/s "
            f"(80% of {saturated.rate:.0f}, at {count} connections), "
            f"achieved {paced.rate:.0f} req/s",
            flush=True,
        )
        # NOTE: with two workers, where the two batch connections land decides the rate (see
        # `Process.connections_per_worker`), so the report says how they were spread.
        spread: list[list[int]] = []
        probe = threading.Timer(load.duration_s / 2, lambda: spread.append(
            server.connections_per_worker()))  # fmt: skip
        probe.start()
        batch = load.closed(base, key, f"{tag}batch", batch=True)
        probe.join()
        batch.connections = spread[0] if spread else []
        phases = [(f"predict c{r.load_connections}", r) for r in sweep]
        phases += [("saturated", saturated), ("predict@80%", paced), ("batch", batch)]
        if load.low_n:
            query = f"?n_samples={load.low_n}"
            phases.append(
                (f"predict N={load.low_n}", load.closed(base, key, f"{tag}lown", query=query))
            )
    for name, result in phases:
        load.results.append((f"{backend} w{workers}", name, result))
        if name == "saturated":  # NOTE: one of the sweep's runs, checked as such
            continue
        flagged, items, bad, cut_off = lost_cases(url, result)
        print(
            f"  {backend} w{workers} {name}: flagged answers {flagged}, review items {items} "
            f"({cut_off} of requests cut off in flight), mismatches {bad}, "
            f"statuses {dict(sorted(result.statuses.items()))}, errors {result.errors}",
            flush=True,
        )


def _rate(result: Result) -> float:
    """Encounters per second of a batch phase, requests per second otherwise."""
    return result.rate * result.per_request


def report(load: Load, ceilings: dict[int, Ceilings]) -> None:
    """Print the table: rate, p50/p99 and the ratios to the bare FastAPI app and plain ASGI.

    A `predict cN` row is compared with the reference apps at the same N connections; the
    `saturated` row, each server's best of its sweep against each reference's best, is the
    target's ratio.
    """
    print()
    print(f"{'server':<16}{'phase':<13}{'rate':>16}{'p50 ms':>9}{'p99 ms':>9}{'vs bare':>9}"
          f"{'vs ASGI':>9}")  # fmt: skip

    def row(server: str, phase: str, result: Result, *against: Result, note: str = "") -> None:
        unit = "enc/s" if result.per_request > 1 else "req/s"
        ratios = "".join(f"{_rate(result) / _rate(other):>9.2f}" for other in against)
        print(f"{server:<16}{phase:<13}{_rate(result):>10.0f} {unit}{result.p50_ms:>9.1f}"
              f"{result.p99_ms:>9.1f}{ratios}{note}")  # fmt: skip

    for workers, ceiling in sorted(ceilings.items()):
        for name, reference in (("bare", ceiling.fastapi), ("ASGI", ceiling.plain)):
            server = f"{name} w{workers}"
            for result in reference.sweep:
                row(server, f"predict c{result.load_connections}", result)
            best = saturating(reference.sweep)
            row(server, "saturated", best, note=f"  at {best.load_connections} connections")
            row(server, "batch", reference.batch)
    for server, phase, result in load.results:
        ceiling = ceilings[int(server.rsplit("w", 1)[1])]
        if phase == "batch":
            spread = f"  connections per worker {result.connections}" if result.connections else ""
            row(server, phase, result, ceiling.fastapi.batch, ceiling.plain.batch, note=spread)
        elif phase == "saturated":
            bests = (saturating(ceiling.fastapi.sweep), saturating(ceiling.plain.sweep))
            note = f"  at {result.load_connections} connections"
            row(server, phase, result, *bests, note=note)
        elif phase.startswith("predict c"):
            count = result.load_connections
            against = (ceiling.fastapi.single_at(count), ceiling.plain.single_at(count))
            row(server, phase, result, *against)
        else:
            row(server, phase, result)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the whole matrix and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument(
        "--connections",
        type=int,
        nargs="+",
        default=[32, 64, 128],
        help="closed-loop connection counts swept for the saturating rate",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--rows", type=int, default=5000, help="encounters read from the data")
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--model-dir", type=Path, default=None, help="default: newest version")
    parser.add_argument("--data", type=Path, default=None, help="default: the shared data file")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python client only")
    parser.add_argument(
        "--low-n", type=int, default=None, help="also measure /predict at this N (stack cost)"
    )
    args = parser.parse_args(argv)

    rows = published_rows(args.data or data_path(), args.rows)
    work_dir = Path(tempfile.mkdtemp(prefix="triage-load-"))
    use_wrk = shutil.which("wrk") is not None and not args.no_wrk
    load = Load(
        single=write_templates(work_dir / "single.txt", rows, 1),
        batch=write_templates(work_dir / "batch.txt", rows, args.batch_size),
        batch_size=args.batch_size,
        duration_s=args.duration,
        connections=tuple(sorted(set(args.connections))),
        work_dir=work_dir,
        use_wrk=use_wrk,
        low_n=args.low_n,
    )
    print(
        f"{len(rows)} encounters; {args.duration:.0f} s per phase; closed loop with "
        f"{'wrk' if use_wrk else 'the Python client'} at "
        f"{', '.join(map(str, load.connections))} connections; "
        f"{os.cpu_count()} CPUs shared by server and load generator",
        flush=True,
    )
    ceilings: dict[int, Ceilings] = {}
    try:
        for workers in args.workers:
            floors = [_ceiling(load, workers, plain=plain) for plain in (False, True)]
            ceilings[workers] = Ceilings(*floors)
        for backend in args.databases:
            for workers in args.workers:
                kwargs = {"backend": backend, "workers": workers, "model_dir": args.model_dir}
                if backend == "sqlite":
                    url = f"sqlite:///{work_dir / f'triage-w{workers}.db'}"
                    measure_service(load, url=url, **kwargs)
                    continue
                with postgres() as server:
                    measure_service(load, url=server.url, **kwargs)
        report(load, ceilings)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
