"""`triage fhir-example`: a data row printed as a CDS Hooks request that maps back to the row."""

import json
from pathlib import Path

import pytest

from app.cli import main
from app.features.fhir import record_from_prefetch
from app.features.fhir.commands import read_row

pytestmark = pytest.mark.data


def test_prints_a_request_that_maps_back_to_the_row(
    data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fhir-example", "--data", str(data_file), "--row", "3"]) == 0
    request = json.loads(capsys.readouterr().out)
    row = read_row(data_file, 3)
    assert request["hook"] == "encounter-discharge"
    assert request["context"]["encounterId"] == row["encounter_id"]
    assert record_from_prefetch(request["prefetch"]).encounter() == row


def test_a_row_past_the_end_is_refused_with_the_row_count(
    data_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fhir-example", "--data", str(data_file), "--row", "99999999"]) == 1
    assert "has no row 99999999 (it has 86290 rows)" in capsys.readouterr().err
