"""The API's ICD-9 pattern (checked by pydantic-core) agrees with the encoder's own check."""

import json

import pytest
from pydantic import TypeAdapter, ValidationError

from app.api.schemas import Encounter
from app.features.icd9 import is_valid_icd9

ENCOUNTER = TypeAdapter(Encounter)

pytestmark = pytest.mark.data


def test_the_api_takes_exactly_the_diagnosis_codes_the_encoder_reads(encounters) -> None:
    codes = {e[f] for e in encounters for f in ("diag_1", "diag_2", "diag_3") if e.get(f)}
    odd = ["8", "250", "250.8", "250.83", "250.831", "V45", "V45.8", "V4", "E888", "E888.1",
           "E888.12", "E88", "2500", "25O", ".5", "250.", "V45.", "\u0662\u0665\u0660", "250\n",
           " 250 ", "v45", "E", "1e3"]  # fmt: skip
    for code in sorted(codes) + odd:
        body = json.dumps({"encounter_id": "x", "diag_1": code})
        try:
            accepted = ENCOUNTER.validate_json(body).get("diag_1")
        except ValidationError:
            accepted = None
        expected = code.strip() if is_valid_icd9(code.strip()) else None
        assert accepted == expected, code
