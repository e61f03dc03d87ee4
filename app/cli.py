"""The `triage` command line: training, calibration, evaluation, database, keys, serving, FHIR.

Each command's work lives in the package that owns it; this module only parses arguments.
Imports are lazy so `triage serve` never loads the training stack and vice versa.
"""

import argparse
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path


def _add_training_commands(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train, evaluate and calibrate a model from the data")
    train.add_argument(
        "--data", type=Path, required=True, help="published-format CSV (plain or .gz)"
    )
    train.add_argument(
        "--out", type=Path, default=None, help="model folder (default: a new version)"
    )
    train.add_argument("--seed", type=int, default=20261127, help="seed for split, init and MC")
    train.add_argument("--max-rows", type=int, default=None, help="use only the first N rows")
    train.add_argument(
        "--epochs", type=int, default=None, help="most epochs (default: the recipe's)"
    )
    train.add_argument("--review-rate", type=float, default=0.10, help="target share flagged")
    train.add_argument("--no-report", action="store_true", help="skip baselines and the report")
    train.add_argument("--n-samples", type=int, default=None, help="MC samples stored in the card")
    train.add_argument("--threads", type=int, default=1, help="CPU threads (fixed: determinism)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(handler="app.training.commands:train")

    evaluate = sub.add_parser("evaluate", help="score a data file and print metrics as JSON")
    evaluate.add_argument(
        "--data", type=Path, required=True, help="published-format CSV (plain or .gz)"
    )
    evaluate.add_argument("--model", type=Path, default=None, help="model folder (default: newest)")
    evaluate.add_argument(
        "--n-samples", type=int, default=None, help="MC samples (default: card's)"
    )
    evaluate.add_argument("--threads", type=int, default=1, help="CPU threads")
    evaluate.set_defaults(handler="app.training.commands:evaluate")

    calibrate = sub.add_parser(
        "calibrate",
        help="re-derive the uncertainty threshold (from data), or refit calibration and threshold"
        " on matured outcomes into a new model version (--from-db); no retraining",
    )
    source = calibrate.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="published-format CSV (plain or .gz)")
    source.add_argument(
        "--from-db",
        action="store_true",
        help="the matured outcomes in TRIAGE_DATABASE_URL; writes a new version folder",
    )
    calibrate.add_argument(
        "--since",
        type=date.fromisoformat,
        default=None,
        help="with --from-db: outcomes of encounters discharged on or after this date (YYYY-MM-DD)",
    )
    calibrate.add_argument(
        "--model", type=Path, default=None, help="model folder (default: newest)"
    )
    calibrate.add_argument(
        "--review-rate",
        type=float,
        default=None,
        help="target share flagged (required with --data; default with --from-db: the card's)",
    )
    calibrate.add_argument("--threads", type=int, default=1, help="CPU threads")
    calibrate.set_defaults(handler="app.training.commands:calibrate")

    referral = sub.add_parser(
        "report-referral", help="referral report: what referring cases does, stability, shifts"
    )
    referral.add_argument(
        "--data", type=Path, required=True, help="the model's training data (published format)"
    )
    referral.add_argument("--model", type=Path, default=None, help="model folder (default: newest)")
    referral.add_argument("--out", type=Path, default=None, help="report folder (default: model's)")
    referral.add_argument(
        "--refit-guard", action="store_true", help="fit the domain guard into the card first"
    )
    referral.add_argument(
        "--fit-decision",
        action="store_true",
        help="fit the action threshold and the decision-flip level into the card first",
    )
    referral.add_argument(
        "--action-threshold",
        type=float,
        default=None,
        help="fit the decision at this action threshold (0-1) instead of the validation choice",
    )
    referral.add_argument(
        "--no-retrain", action="store_true", help="skip the under-30 held-out retrain"
    )
    referral.set_defaults(handler="app.training.commands:report_referral")


def _add_service_commands(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database migrations")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="migrate to the newest schema (alembic upgrade)")
    upgrade.add_argument("revision", nargs="?", default="head")
    upgrade.set_defaults(handler="app.db.commands:upgrade")
    downgrade = db_sub.add_parser("downgrade", help="migrate back (alembic downgrade)")
    downgrade.add_argument("revision", nargs="?", default="-1")
    downgrade.set_defaults(handler="app.db.commands:downgrade")

    apikey = sub.add_parser("apikey", help="API keys")
    key_sub = apikey.add_subparsers(dest="apikey_command", required=True)
    create = key_sub.add_parser("create", help="create a key; it is printed once, last on stdout")
    create.add_argument("--role", choices=("ehr", "clinician", "admin"), required=True)
    create.add_argument(
        "--name", required=True, help="who or what holds the key (unique among live keys of a role)"
    )
    create.set_defaults(handler="app.auth.commands:create_key")
    listing = key_sub.add_parser("list", help="list every key (id, name, role, prefix, dates)")
    listing.set_defaults(handler="app.auth.commands:list_all")
    revoke = key_sub.add_parser("revoke", help="revoke a key: its API use and page sessions end")
    revoke.add_argument("key_id", type=int, metavar="ID", help="the key's id (see `list`)")
    revoke.set_defaults(handler="app.auth.commands:revoke")

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(handler="app.serve:serve")


def _add_fhir_commands(sub: argparse._SubParsersAction) -> None:
    fhir = sub.add_parser(
        "fhir-example", help="print a data row as a CDS Hooks encounter-discharge request (FHIR)"
    )
    fhir.add_argument(
        "--data", type=Path, required=True, help="published-format CSV (plain or .gz)"
    )
    fhir.add_argument("--row", type=int, required=True, help="data row, 0 = first after header")
    fhir.set_defaults(handler="app.features.fhir.commands:example")


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser."""
    parser = argparse.ArgumentParser(prog="triage", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _add_training_commands(sub)
    _add_service_commands(sub)
    _add_fhir_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit status."""
    args = build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    module = __import__(module_name, fromlist=[func_name])
    result = getattr(module, func_name)(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
