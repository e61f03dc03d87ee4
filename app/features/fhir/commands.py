"""Handler of `triage fhir-example`: one data row as a CDS Hooks request, printed as JSON."""

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path
from typing import Any

from app.features.columns import INTEGER_COLUMNS, LABEL_COLUMN, MISSING_MARKER
from app.features.fhir.example import fhir_from_record
from app.features.fhir.validation import validate_prefetch


def read_row(path: Path, n: int) -> dict[str, Any]:
    """Data row `n` (0 = the first after the header) as a /predict record, label left out."""
    opener = gzip.open if path.suffix == ".gz" else open
    count = 0
    with opener(path, "rt", newline="") as handle:
        for count, raw in enumerate(csv.DictReader(handle), start=1):
            if count == n + 1:
                return {
                    name: int(value) if name in INTEGER_COLUMNS else value
                    for name, value in raw.items()
                    if name != LABEL_COLUMN and value != MISSING_MARKER
                } | {"encounter_id": raw["encounter_id"]}
    raise ValueError(f"{path} has no row {n} (it has {count} rows)")


def example(args: argparse.Namespace) -> int:
    """Print the CDS Hooks encounter-discharge request built from one row of the data."""
    if args.row < 0:
        print("--row must be 0 or more", file=sys.stderr)
        return 2
    try:
        request = fhir_from_record(read_row(args.data, args.row))
    except (OSError, ValueError) as exc:
        print(f"fhir-example: {exc}", file=sys.stderr)
        return 1
    validate_prefetch(request["prefetch"])
    print(json.dumps(request, indent=2))
    return 0
