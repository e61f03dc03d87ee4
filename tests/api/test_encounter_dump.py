"""The cheap views of an encounter equal pydantic's own dumps."""

import pytest

from app.api.schemas import Encounter

pytestmark = pytest.mark.data


def test_the_cheap_views_match_pydantics_dumps(encounters) -> None:
    for k, raw in enumerate(encounters):
        partial = {key: value for i, (key, value) in enumerate(raw.items()) if i % 3 != k % 3}
        for body in (raw, {**partial, "encounter_id": raw["encounter_id"], "race": None}):
            encounter = Encounter.model_validate(body)
            assert encounter.published_received() == encounter.as_received()
            assert encounter.published_record() == encounter.record()
