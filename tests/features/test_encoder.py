"""The shared feature encoding: missing values, unknown categories, ICD-9 chapters, age buckets."""

import json
from typing import Any

import numpy as np
import pytest

from app.features import FeatureSpec, columns_from_records
from app.features.columns import AGE_BUCKETS, FEATURE_SOURCE_COLUMNS, MEDICATION_COLUMNS
from app.features.encoder import MISSING, UNKNOWN
from app.features.icd9 import icd9_chapter

BASE: dict[str, Any] = {
    "race": "Caucasian",
    "gender": "Female",
    "age": "[70-80)",
    "weight": "?",
    "admission_type_id": 1,
    "discharge_disposition_id": 1,
    "admission_source_id": 7,
    "time_in_hospital": 3,
    "payer_code": "MC",
    "medical_specialty": "Cardiology",
    "num_lab_procedures": 41,
    "num_procedures": 1,
    "num_medications": 12,
    "number_outpatient": 0,
    "number_emergency": 0,
    "number_inpatient": 1,
    "diag_1": "428",
    "diag_2": "250.01",
    "diag_3": "V45",
    "number_diagnoses": 7,
    "max_glu_serum": "None",
    "A1Cresult": ">8",
    **dict.fromkeys(MEDICATION_COLUMNS, "No"),
    "change": "Ch",
    "diabetesMed": "Yes",
}


def _training_records() -> list[dict[str, Any]]:
    """Forty varied encounters: every category seen often enough to get its own slot."""
    records = []
    for i in range(40):
        record = dict(BASE)
        record["time_in_hospital"] = 1 + i % 10
        record["num_lab_procedures"] = 20 + i
        record["number_inpatient"] = i % 4
        record["age"] = AGE_BUCKETS[i % 10]
        record["gender"] = "Female" if i % 2 else "Male"
        record["insulin"] = "Steady" if i % 2 else "Up"
        records.append(record)
    return records


@pytest.fixture(scope="module")
def spec() -> FeatureSpec:
    return FeatureSpec.fit(columns_from_records(_training_records()))


def _encode_one(spec: FeatureSpec, **changes: Any) -> dict[str, float]:
    record = {**BASE, **changes}
    row = spec.encode(columns_from_records([record]))[0]
    return dict(zip(spec.feature_names, row.tolist(), strict=True))


def _absent(spec: FeatureSpec, column: str) -> dict[str, float]:
    record = {k: v for k, v in BASE.items() if k != column}
    row = spec.encode(columns_from_records([record]))[0]
    return dict(zip(spec.feature_names, row.tolist(), strict=True))


def test_encoded_width_matches_the_feature_names(spec: FeatureSpec) -> None:
    x = spec.encode(columns_from_records(_training_records()))
    assert x.dtype == np.float32
    assert x.shape == (40, spec.n_features)
    assert len(set(spec.feature_names)) == spec.n_features


def test_every_one_hot_block_has_exactly_one_slot_set(spec: FeatureSpec) -> None:
    row = _encode_one(spec, race="Martian", diag_1="?", gender=None)
    for column in ("race", "gender", "diag_1", "diag_2", "insulin", "admission_type_id"):
        block = [v for name, v in row.items() if name.startswith(f"{column}=")]
        assert sum(block) == 1.0, column


def test_unseen_category_goes_to_the_unknown_slot(spec: FeatureSpec) -> None:
    row = _encode_one(spec, race="Martian", admission_source_id=999, metformin="Sideways")
    assert row[f"race={UNKNOWN}"] == 1.0
    assert row["race=Caucasian"] == 0.0
    assert row[f"admission_source_id={UNKNOWN}"] == 1.0
    assert row[f"metformin={UNKNOWN}"] == 1.0


def test_missing_is_its_own_state_whether_marked_null_or_absent(spec: FeatureSpec) -> None:
    for row in (_encode_one(spec, race="?"), _encode_one(spec, race=None), _absent(spec, "race")):
        assert row[f"race={MISSING}"] == 1.0
        assert row[f"race={UNKNOWN}"] == 0.0


def test_missing_count_sets_its_indicator_and_a_neutral_value(spec: FeatureSpec) -> None:
    row = _encode_one(spec, num_lab_procedures="?")
    assert row[f"num_lab_procedures={MISSING}"] == 1.0
    assert row["num_lab_procedures"] == 0.0
    present = _encode_one(spec, num_lab_procedures=80)
    assert present[f"num_lab_procedures={MISSING}"] == 0.0
    assert present["num_lab_procedures"] > 1.0  # 80 is far above the training mean of ~40


def test_none_is_a_category_of_lab_results_not_a_missing_value(spec: FeatureSpec) -> None:
    row = _encode_one(spec, max_glu_serum="None")
    assert row["max_glu_serum=None"] == 1.0
    assert row[f"max_glu_serum={MISSING}"] == 0.0
    assert _encode_one(spec, max_glu_serum=None)[f"max_glu_serum={MISSING}"] == 1.0


def test_integer_codes_match_whether_sent_as_int_or_text(spec: FeatureSpec) -> None:
    assert _encode_one(spec, admission_type_id=1) == _encode_one(spec, admission_type_id="1")


@pytest.mark.parametrize(
    ("code", "chapter"),
    [
        ("250", "diabetes"),
        ("250.83", "diabetes"),
        ("249", "endocrine_metabolic"),
        ("8", "infectious"),
        ("428", "circulatory"),
        ("786", "symptoms_ill_defined"),
        ("996.1", "injury_poisoning"),
        ("V45", "supplementary_v"),
        ("V57.89", "supplementary_v"),
        ("E885", "external_e"),
        ("E950.1", "external_e"),
        ("E88", None),
        ("V5", None),
        ("4280", None),
        ("abc", None),
    ],
)
def test_icd9_codes_group_into_chapters(code: str, chapter: str | None) -> None:
    assert icd9_chapter(code) == chapter


def test_diagnosis_slots_cover_chapters_missing_and_malformed(spec: FeatureSpec) -> None:
    row = _encode_one(spec, diag_1="250.02", diag_2="E878", diag_3="not-a-code")
    assert row["diag_1=diabetes"] == 1.0
    assert row["diag_2=external_e"] == 1.0
    assert row[f"diag_3={UNKNOWN}"] == 1.0
    assert _encode_one(spec, diag_3="?")[f"diag_3={MISSING}"] == 1.0


def test_age_buckets_are_an_increasing_ordinal(spec: FeatureSpec) -> None:
    values = [_encode_one(spec, age=bucket)["age"] for bucket in AGE_BUCKETS]
    assert values == sorted(values)
    assert len(set(values)) == len(AGE_BUCKETS)
    assert all(_encode_one(spec, age=b)[f"age={MISSING}"] == 0.0 for b in AGE_BUCKETS)


def test_missing_or_unreadable_age_is_flagged_at_the_middle(spec: FeatureSpec) -> None:
    for age in ("?", None, "[100-110)"):
        row = _encode_one(spec, age=age)
        assert row[f"age={MISSING}"] == 1.0
        assert row["age"] == 0.0


def test_visit_counts_are_log_scaled(spec: FeatureSpec) -> None:
    zero, ten, twenty = (
        _encode_one(spec, number_inpatient=n)["number_inpatient"] for n in (0, 10, 20)
    )
    # log1p compresses the heavy tail: the second ten visits move the feature far less.
    assert twenty - ten < 0.5 * (ten - zero)


def test_spec_survives_a_json_round_trip(spec: FeatureSpec) -> None:
    restored = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    columns = columns_from_records([{**BASE, "race": "Martian", "age": None}])
    assert np.array_equal(restored.encode(columns), spec.encode(columns))


def test_spec_of_another_width_is_refused(spec: FeatureSpec) -> None:
    data = spec.to_dict()
    data["feature_names"] = data["feature_names"][:-1]
    with pytest.raises(ValueError, match="feature names"):
        FeatureSpec.from_dict(data)


def test_every_published_feature_column_is_read() -> None:
    assert set(FeatureSpec.source_columns()) <= set(FEATURE_SOURCE_COLUMNS)
    unused = set(FEATURE_SOURCE_COLUMNS) - set(FeatureSpec.source_columns())
    assert unused == set()
