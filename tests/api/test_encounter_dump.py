"""One dump gives both views of an encounter, equal to the two separate dumps."""

import pytest

from app.api.schemas import Encounter

pytestmark = pytest.mark.data


def test_received_and_record_match_the_separate_dumps(encounters) -> None:
    for k, raw in enumerate(encounters):
        partial = {key: value for i, (key, value) in enumerate(raw.items()) if i % 3 != k % 3}
        for body in (raw, {**partial, "encounter_id": raw["encounter_id"], "race": None}):
            encounter = Encounter.model_validate(body)
            received, record = encounter.received_and_record()
            assert received == encounter.as_received() and record == encounter.record()
