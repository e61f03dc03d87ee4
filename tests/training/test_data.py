"""Reading the published format, the label, death/hospice exclusion and the patient split."""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.features.columns import DEATH_OR_HOSPICE_DISPOSITIONS, PUBLISHED_COLUMNS
from app.training.data import load_dataset, read_frame, split_assignment


def _write_rows(path: Path, rows: list[dict[str, str]], *, compress: bool = False) -> Path:
    frame = pd.DataFrame(rows, columns=list(PUBLISHED_COLUMNS), dtype=object).fillna("?")
    text = frame.to_csv(index=False)
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _row(encounter: int, patient: int, disposition: str, label: str) -> dict[str, str]:
    return {
        "encounter_id": str(encounter),
        "patient_nbr": str(patient),
        "discharge_disposition_id": disposition,
        "readmitted": label,
        "A1Cresult": "None",
        "age": "[50-60)",
    }


def test_gzip_is_detected_by_content_not_by_name(tmp_path: Path) -> None:
    rows = [_row(1, 10, "1", "<30"), _row(2, 11, "1", "NO")]
    plain = _write_rows(tmp_path / "plain.csv", rows)
    hidden_gzip = _write_rows(tmp_path / "export.dat", rows, compress=True)
    pd.testing.assert_frame_equal(read_frame(plain), read_frame(hidden_gzip))


def test_question_mark_is_missing_but_none_is_a_category(tmp_path: Path) -> None:
    frame = read_frame(_write_rows(tmp_path / "d.csv", [_row(1, 10, "1", "NO")]))
    assert frame.loc[0, "A1Cresult"] == "None"
    assert pd.isna(frame.loc[0, "race"])


def test_labels_and_death_or_hospice_rows_are_counted_not_kept(tmp_path: Path) -> None:
    rows = [_row(1, 10, "1", "<30"), _row(2, 10, "1", ">30"), _row(3, 11, "3", "NO")]
    rows += [_row(10 + code, 20 + code, str(code), "NO") for code in DEATH_OR_HOSPICE_DISPOSITIONS]
    rows.append(_row(99, 99, "1", "?"))
    dataset = load_dataset(_write_rows(tmp_path / "d.csv", rows))
    assert dataset.rows_read == len(rows)
    assert dataset.excluded_death_hospice == len(DEATH_OR_HOSPICE_DISPOSITIONS)
    assert dataset.excluded_unlabelled == 1
    assert dataset.labels.tolist() == [1, 0, 0]
    assert dataset.frame["encounter_id"].tolist() == ["1", "2", "3"]


def test_file_without_a_label_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("encounter_id,race\n1,Caucasian\n")
    with pytest.raises(ValueError, match="readmitted"):
        load_dataset(path)


@pytest.fixture(scope="module")
def real_frame(data_file: Path) -> pd.DataFrame:
    return read_frame(data_file, max_rows=20000)


def test_no_patient_is_in_two_splits(real_frame: pd.DataFrame) -> None:
    split = split_assignment(real_frame, seed=3)
    per_patient = pd.Series(split).groupby(real_frame["patient_nbr"].to_numpy()).nunique()
    assert per_patient.max() == 1
    assert real_frame["patient_nbr"].duplicated().any()  # the check had repeat patients to catch


def test_split_is_about_70_15_15_and_fixed_by_the_seed(real_frame: pd.DataFrame) -> None:
    split = split_assignment(real_frame, seed=3)
    shares = np.bincount(split, minlength=3) / len(split)
    assert shares == pytest.approx([0.70, 0.15, 0.15], abs=0.02)
    assert np.array_equal(split, split_assignment(real_frame, seed=3))
    assert not np.array_equal(split, split_assignment(real_frame, seed=4))


def test_a_patient_keeps_its_split_in_any_subset_of_the_file(real_frame: pd.DataFrame) -> None:
    full = split_assignment(real_frame, seed=3)
    subset = real_frame.iloc[::7]
    assert np.array_equal(split_assignment(subset, seed=3), full[::7])


def test_files_without_patient_numbers_still_split(real_frame: pd.DataFrame) -> None:
    anonymous = real_frame.drop(columns=["patient_nbr", "encounter_id"]).head(2000)
    shares = np.bincount(split_assignment(anonymous, seed=3), minlength=3) / 2000
    assert shares == pytest.approx([0.70, 0.15, 0.15], abs=0.04)
