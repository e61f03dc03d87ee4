"""Property-based fuzzing of the whole OpenAPI schema against the running service.

Valid and invalid requests for every operation, each with the key its role needs: no answer
is a 5xx, and every 4xx says what was wrong.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from tests.support import prepare_database, triage_serve

pytestmark = [pytest.mark.data, pytest.mark.slow]

EXAMPLES = 12  # NOTE: per operation; keeps the whole run well under two minutes on 2 cores.


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Any]:
    """The service on SQLite, its schema, and a bearer header per role."""
    tmp = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{tmp / 'fuzz.db'}"
    keys = prepare_database(url)
    with triage_serve(database_url=url, model_dir=model_dir, log_dir=tmp) as server:
        schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
        schema.keys = {role: {"Authorization": f"Bearer {key}"} for role, key in keys.items()}
        schema.base = server.base_url
        yield schema


schema = schemathesis.pytest.from_fixture("served")


def _headers(path: str, keys: dict[str, dict[str, str]]) -> dict[str, str]:
    if path.startswith(("/predict", "/cds-services", "/fhir")):
        return keys["ehr"]
    if path.startswith("/admin") or path.endswith("/reassign"):
        return keys["admin"]
    return keys["clinician"]


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_5xx_and_every_4xx_names_the_problem(case: Any, served: Any) -> None:
    response = case.call(base_url=served.base, headers=_headers(case.path, served.keys), timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    if 400 <= response.status_code < 500:
        body = response.json()
        assert body.get("detail"), (case.method, case.path, response.status_code, response.text)


HUGE = [2**31, 2**63, 2**64 + 1, 10**30]


def _operations_with_integer_paths(schema: Any) -> list[tuple[Any, list[str]]]:
    found = []
    for _path, methods in schema.items():
        for _method, operation in methods.items():
            names = [
                p["name"]
                for p in operation.definition.raw.get("parameters", [])
                if p.get("in") == "path" and p.get("schema", {}).get("type") == "integer"
            ]
            if names:
                found.append((operation, names))
    return found


def test_huge_integers_in_paths_and_cursors_never_answer_5xx(served: Any) -> None:
    """Every integer path parameter, beyond what the database can bind: each answer is a 4xx
    (forged cursors: `test_huge_integers.py`, with keys the fuzzing above cannot revoke)."""
    operations = _operations_with_integer_paths(served)
    assert len(operations) >= 7  # the queue's and the admin's (the page is not in the schema)
    for operation, names in operations:
        for value in HUGE:
            case = operation.Case(path_parameters=dict.fromkeys(names, value))
            response = case.call(
                base_url=served.base, headers=_headers(case.path, served.keys), timeout=60
            )
            case.validate_response(response, checks=[not_a_server_error])
            assert 400 <= response.status_code < 500, (case.formatted_path, response.text)
