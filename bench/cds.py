"""The CDS Hooks path against `POST /predict` on the same encounters, in one run.

    python bench/cds.py [--duration 10] [--connections 32] [--rows 1000] [--bodies 3000]

Serves `triage serve` (one worker, SQLite), then: `/predict` in a closed loop, the
readmission-risk hook in a closed loop on the same encounters (each turned into a hook request
by the converter), and the hook in an open loop at 80% of its closed-loop rate (latency from
each request's scheduled time). Target (issue 20): hook rate >= 0.5 of `/predict`'s, p99 under
100 ms at 80% load. Bodies are built ahead (a hook body is tens of kB): `--bodies` distinct
encounter ids, reused in turn beyond that (then a request is a retry, answered idempotently).
"""

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.features.fhir.example import fhir_from_record
from bench.load import Result, _python_load
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


def load(
    base: str,
    path: str,
    templates: list[str],
    key: str,
    args: argparse.Namespace,
    rate: float | None = None,
) -> Result:
    """One phase against `path`."""
    run = f"{path.strip('/').replace('/', '-')}-{'open' if rate else 'closed'}"
    max_requests = int(rate * args.duration) + 1 if rate else 1_000_000
    return asyncio.run(
        _python_load(
            base,
            path,
            templates=templates,
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
    args = parser.parse_args(argv)
    rows = published_rows(args.data or data_path(), args.rows)
    predict, hook = bodies(rows, args.bodies)
    work = Path(tempfile.mkdtemp(prefix="triage-cds-bench-"))
    url = f"sqlite:///{work / 'bench.db'}"
    key = prepare_database(url)["ehr"]
    with triage_serve(database_url=url, log_dir=work, model_dir=args.model_dir) as server:
        base = server.base_url
        plain = load(base, "/predict", predict, key, args)
        hooked = load(base, HOOK, hook, key, args)
        paced = load(base, HOOK, hook, key, args, rate=0.8 * hooked.rate)
    print(f"{'phase':<28}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for label, r in (
        ("/predict closed", plain),
        ("hook closed", hooked),
        ("hook open @80%", paced),
    ):
        print(f"{label:<28}{r.rate:>9.1f}{r.p50_ms:>9.1f}{r.p99_ms:>9.1f}  {r.statuses}")
    ratio = hooked.rate / plain.rate if plain.rate else 0.0
    print(
        f"hook / predict: {ratio:.2f} (target >= 0.5); p99 at 80%: {paced.p99_ms:.1f} ms"
        " (target < 100)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
