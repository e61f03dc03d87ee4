"""Live-performance bench: the job over 1,000,000 stored scores with outcomes, and `/predict`
latency with and without the job running continuously.

    python bench/outcomes.py [--rows 1000000] [--databases sqlite postgresql] [--duration 15]

For each database it bulk-loads `--rows` scored encounters with outcomes (discharges spread
over the 13 months before today, so every window is full), times `PerformanceJob.run_once`
(the issue's bound: under 10 s), then starts `triage serve` on that database twice, the job
idle (one run at start-up, waited out) and the job rerun every second, and measures
single-encounter `/predict` at a fixed open-loop rate (latency from each request's scheduled
time), printing both side by side.
"""

import argparse
import asyncio
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load import Result, _python_load, write_templates
from tests.support import data_path, postgres, prepare_database, published_rows, triage_serve

VERSION = "bench-v1"
AGES = [f"[{lo}-{lo + 10})" for lo in range(0, 100, 10)]
GENDERS = ["Female", "Male"]
RACES = ["AfricanAmerican", "Asian", "Caucasian", "Hispanic", "Other", None]
SCORED = (
    "encounter_id, model_version, probability, raw_probability, std, flagged, reasons, age,"
    " gender, race, admission_type_id, discharged_on, scored_at"
)
OUTCOMES = "encounter_id, model_version, readmitted, readmitted_on, recorded_at, recorded_by"


def synthetic(n: int, seed: int = 0) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """`n` scored encounters and their outcomes: a model of AUROC about 0.68, 10% flagged."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-2.1, 0.8, n)
    p = 1.0 / (1.0 + np.exp(-z))
    y = rng.random(n) < 1.0 / (1.0 + np.exp(-(0.1 + 0.9 * z)))
    today = datetime.now(UTC).date()
    ago = rng.integers(31, 31 + 396, n)
    ages, genders = rng.integers(0, len(AGES), n), rng.integers(0, 2, n)
    races, admissions = rng.integers(0, len(RACES), n), rng.integers(1, 9, n)
    flagged = rng.random(n) < 0.1
    scored, outcomes = [], []
    for i in range(n):
        day = today - timedelta(days=int(ago[i]))
        eid = f"bench-{i}"
        scored.append(
            (eid, VERSION, float(p[i]), float(p[i]), 0.05, bool(flagged[i]),
             '["high_uncertainty"]' if flagged[i] else "[]", AGES[ages[i]],
             GENDERS[genders[i]], RACES[races[i]], str(admissions[i]), day.isoformat(),
             f"{day.isoformat()} 12:00:00.000000")
        )  # fmt: skip
        readmitted_on = (day + timedelta(days=7)).isoformat() if y[i] else None
        outcomes.append((eid, VERSION, bool(y[i]), readmitted_on, f"{today} 00:00:00", "bench"))
    return scored, outcomes


def fill_sqlite(path: Path, n: int) -> None:
    """Bulk-insert through the driver in one transaction."""
    scored, outcomes = synthetic(n)
    connection = sqlite3.connect(path)
    with connection:
        connection.executemany(
            f"INSERT INTO scored_encounters ({SCORED}) VALUES ({', '.join('?' * 13)})", scored
        )
        connection.executemany(
            f"INSERT INTO outcomes ({OUTCOMES}) VALUES (?, ?, ?, ?, ?, ?)", outcomes
        )
    connection.close()


def fill_postgres(url: str, n: int) -> None:
    """Bulk-load with COPY."""
    import psycopg

    scored, outcomes = synthetic(n)
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql")) as connection:
        with connection.cursor() as cursor:
            with cursor.copy(f"COPY scored_encounters ({SCORED}) FROM STDIN") as copy:
                for row in scored:
                    copy.write_row((*row[:-1], row[-1] + "+00"))
            with cursor.copy(f"COPY outcomes ({OUTCOMES}) FROM STDIN") as copy:
                for row in outcomes:
                    copy.write_row((*row[:-2], row[-2] + "+00", row[-1]))
        connection.execute("ANALYZE")


def time_job(url: str, repeats: int) -> list[float]:
    """Seconds of each `run_once` over the whole database (wall); CPU seconds printed too."""
    from app.core.config import MonitoringSettings
    from app.db.session import Database
    from app.monitoring.job import PerformanceJob

    database = Database(url, timeout_s=60)
    job = PerformanceJob(database, MonitoringSettings(), references={})
    try:
        seconds, cpu = [], []
        for _ in range(repeats):
            started, used = time.perf_counter(), time.process_time()
            snapshot = job.run_once()
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        # NOTE: CPU seconds of this process: the job's wall time when the cores are not shared.
        print(f"  job CPU: {', '.join(f'{s:.2f}' for s in cpu)} s")
        window = snapshot["model_versions"][VERSION]["windows"]["365d"]["cohorts"]["all"]
        print(f"  365d all: n {window['n']}, AUROC {window['auroc']:.4f} {window['auroc_ci']}")
        return seconds
    finally:
        database.dispose()


def predict_latency(
    url: str, keys: dict[str, str], bodies: Path, *, interval_s: str, rate: float, duration: float
) -> Result:
    """`/predict` at `rate` requests/s against a server whose job reruns every `interval_s`."""
    work = bodies.parent
    env = {"TRIAGE_MONITORING__INTERVAL_S": interval_s}
    with triage_serve(database_url=url, log_dir=work / "logs", extra_env=env) as server:
        _wait_for_first_run(server.base_url, 120)
        key = keys["ehr"]
        # NOTE: the Python client: at this modest rate it costs little CPU, and wrk's paced
        # latencies came out negative at rates this low.
        templates = bodies.read_text().splitlines()
        load = _python_load(
            server.base_url, "/predict", templates=templates, key=key, run=f"j{interval_s}",
            connections=16, duration_s=duration, max_requests=int(rate * duration) + 1, rate=rate,
        )  # fmt: skip
        return asyncio.run(load)


def _wait_for_first_run(base_url: str, timeout_s: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if "triage_performance_job_seconds " in httpx.get(base_url + "/metrics").text:
            return
        time.sleep(0.5)
    raise RuntimeError("the performance job did not finish its first run")


@contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    """A migrated, empty database of `backend`."""
    if backend == "sqlite":
        yield f"sqlite:///{work / 'outcomes.db'}"
        return
    with postgres() as server:
        yield server.url


def main(argv: Sequence[str] | None = None) -> int:
    """Fill, time the job, measure /predict with and without it; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--databases", nargs="+", default=["sqlite"])
    parser.add_argument("--repeats", type=int, default=3, help="job runs timed")
    parser.add_argument("--rate", type=float, default=100.0, help="/predict requests per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per latency phase")
    parser.add_argument("--no-latency", action="store_true", help="time the job only")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="triage-outcomes-"))
    try:
        bodies = write_templates(work / "single.txt", published_rows(data_path(), 2000), 1)
        for backend in args.databases:
            with database(backend, work) as url:
                keys = prepare_database(url)
                started = time.perf_counter()
                if backend == "sqlite":
                    fill_sqlite(Path(url.removeprefix("sqlite:///")), args.rows)
                else:
                    fill_postgres(url, args.rows)
                print(
                    f"{backend}: {args.rows} rows loaded in {time.perf_counter() - started:.1f} s"
                )
                seconds = time_job(url, args.repeats)
                verdict = "within" if max(seconds) < 10 else "OVER"
                print(f"  job: {', '.join(f'{s:.2f}' for s in seconds)} s ({verdict} 10 s)")
                if args.no_latency:
                    continue
                idle = predict_latency(url, keys, bodies, interval_s="86400", rate=args.rate,
                                       duration=args.duration)  # fmt: skip
                busy = predict_latency(url, keys, bodies, interval_s="1", rate=args.rate,
                                       duration=args.duration)  # fmt: skip
                print(f"  /predict at {args.rate:.0f}/s   p50 ms   p99 ms   answered")
                for label, r in (("job idle", idle), ("job continuous", busy)):
                    print(f"  {label:<16} {r.p50_ms:7.1f}  {r.p99_ms:7.1f}   {r.requests}")
        print(f"median job: {statistics.median(seconds):.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
