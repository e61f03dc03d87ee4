"""The CDS Hooks path against `POST /predict` on the same encounters, in one run.

    python bench/cds.py [--duration 10] [--connections 32] [--rows 1000] [--bodies 3000]

Serves `triage serve` (one worker, SQLite), then: `/predict` in a closed loop, the
readmission-risk hook in a closed loop on the same encounters (each turned into a hook request
by the converter), and the hook in an open loop at 80% of its closed-loop rate (latency from
each request's scheduled time). Target (issue 20): hook rate >= 0.5 of `/predict`'s, p99 under
100 ms at 80% load. Bodies are built ahead (a hook body is tens of kB): `--bodies` distinct
encounter ids, reused in turn beyond that (then a request is a retry, answered idempotently).

Both endpoints are driven the same way: by `wrk` with bench/load.lua when it is installed (as
bench/load.py drives it), else by the Python client, which costs several times more CPU per
hook request than per /predict request (it sends 30 kB). The generator shares the CPUs with the
server, and on a shared machine so does whatever else runs, so beside each rate the report
gives the server's CPU time per request (Linux /proc), the figure neighbours move least.
"""

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.features.fhir.example import fhir_from_record
from bench.load import Result, _python_load, wrk
from tests.support import data_path, prepare_database, published_rows, triage_serve

HOOK = "/cds-services/readmission-risk"


def bodies(rows: Sequence[dict], n: int) -> tuple[list[str], list[str]]:
    """`n` /predict bodies and the `n` hook requests of the same encounters (distinct ids)."""
    predict, hook = [], []
    for k in range(n):
        row = {**rows[k % len(rows)], "encounter_id": f"{rows[k % len(rows)]['encounter_id']}-{k}"}
        predict.append(json.dumps(row))
        hook.append(json.dumps(fhir_from_record(row)))
    return predict, hook


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process `pid` and its children (the workers) so far."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    pids = [pid, *map(int, children.read_text().split())] if children.exists() else [pid]
    total = 0
    for one in pids:
        # NOTE: fields 14 and 15 of /proc/PID/stat, counted after the ")" that ends the name.
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def timed(pid: int, phase: Callable[[], Result]) -> tuple[Result, float]:
    """Run `phase`; its result and the server's CPU milliseconds per answered request."""
    before = cpu_seconds(pid)
    result = phase()
    return result, (cpu_seconds(pid) - before) / max(1, result.requests) * 1e3


def load(
    base: str,
    path: str,
    templates: Path,
    key: str,
    args: argparse.Namespace,
    rate: float | None = None,
) -> Result:
    """One phase against `path` with the bodies of `templates` (one a line)."""
    run = f"{path.strip('/').replace('/', '-')}-{'open' if rate else 'closed'}"
    max_requests = int(rate * args.duration) + 1 if rate else 1_000_000
    if args.wrk:
        return wrk(
            base,
            path,
            bodies=templates,
            key=key,
            run=run,
            connections=args.connections,
            duration_s=args.duration,
            max_requests=max_requests,
            work_dir=templates.parent,
            rate=rate,
        )
    return asyncio.run(
        _python_load(
            base,
            path,
            templates=templates.read_text().splitlines(),
            key=key,
            run=run,
            connections=args.connections,
            duration_s=args.duration,
            max_requests=max_requests,
            rate=rate,
        )
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Measure both paths and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rows", type=int, default=1000, help="encounters read from the data")
    parser.add_argument("--bodies", type=int, default=3000, help="distinct requests built")
    parser.add_argument("--model-dir", type=Path, default=None, help="default: newest version")
    parser.add_argument("--data", type=Path, default=None, help="default: the shared data file")
    parser.add_argument("--no-wrk", action="store_true", help="use the Python client only")
    args = parser.parse_args(argv)
    args.wrk = shutil.which("wrk") is not None and not args.no_wrk
    rows = published_rows(args.data or data_path(), args.rows)
    work = Path(tempfile.mkdtemp(prefix="triage-cds-bench-"))
    predict, hook = work / "predict.txt", work / "hook.txt"
    for path, lines in zip((predict, hook), bodies(rows, args.bodies), strict=True):
        path.write_text("\n".join(lines) + "\n")
    url = f"sqlite:///{work / 'bench.db'}"
    key = prepare_database(url)["ehr"]
    warm = argparse.Namespace(**{**vars(args), "duration": max(1.0, args.duration / 5)})
    try:
        with triage_serve(database_url=url, log_dir=work, model_dir=args.model_dir) as server:
            base = server.base_url
            for path, templates in (("/predict", predict), (HOOK, hook)):
                load(base, path, templates, key, warm)  # warm-up: caches, allocator, connections
            pid = server.popen.pid
            plain = timed(pid, lambda: load(base, "/predict", predict, key, args))
            hooked = timed(pid, lambda: load(base, HOOK, hook, key, args))
            rate = 0.8 * hooked[0].rate
            paced = timed(pid, lambda: load(base, HOOK, hook, key, args, rate=rate))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"load from {'wrk' if args.wrk else 'the Python client'}, {args.connections} connections")
    print(f"{'phase':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'server CPU ms/req':>19}  statuses")
    for label, (r, cpu_ms) in (
        ("/predict closed", plain),
        ("hook closed", hooked),
        ("hook open @80%", paced),
    ):
        print(
            f"{label:<20}{r.rate:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}{cpu_ms:>19.2f}"
            f"  {r.statuses}"
        )
    ratio = hooked[0].rate / plain[0].rate if plain[0].rate else 0.0
    print(
        f"hook / predict: {ratio:.2f} (target >= 0.5; by server CPU per request"
        f" {plain[1] / hooked[1]:.2f}); p99 at 80%: {paced[0].p99_ms:.1f} ms (target < 100)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
