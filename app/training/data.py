"""Read a published-format data file, label it, drop death/hospice rows and split by patient."""

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from app.features import FeatureSpec
from app.features.columns import (
    DEATH_OR_HOSPICE_DISPOSITIONS,
    LABEL_COLUMN,
    MISSING_MARKER,
    POSITIVE_LABEL,
)
from app.features.encoder import Columns
from app.inference.repository import sha256_file

SPLITS: Final = ("train", "validation", "test")
SPLIT_FRACTIONS: Final = (0.70, 0.15, 0.15)
_GZIP_MAGIC: Final = b"\x1f\x8b"
_DISPOSITION: Final = "discharge_disposition_id"
_DEATH_OR_HOSPICE_TEXT: Final = frozenset(str(code) for code in DEATH_OR_HOSPICE_DISPOSITIONS)


@dataclass(frozen=True)
class Dataset:
    """Usable encounters of one file: raw frame, binary labels and what was left out."""

    frame: pd.DataFrame
    labels: np.ndarray
    sha256: str
    rows_read: int
    excluded_death_hospice: int
    excluded_unlabelled: int

    def __len__(self) -> int:
        return len(self.labels)

    def columns(self, mask: np.ndarray | None = None) -> Columns:
        """Return the encoder's column layout for all rows, or for the rows in `mask`."""
        frame = self.frame if mask is None else self.frame[mask]
        present = [c for c in FeatureSpec.source_columns() if c in frame.columns]
        # NOTE: NaN (the file's '?') becomes None so the encoder sees one missing marker.
        return {c: frame[c].astype(object).where(frame[c].notna(), None).tolist() for c in present}


def is_gzip(path: Path) -> bool:
    """Tell whether a file is gzip-compressed, by its magic bytes (not its name)."""
    with path.open("rb") as handle:
        return handle.read(2) == _GZIP_MAGIC


def read_frame(path: Path, max_rows: int | None = None) -> pd.DataFrame:
    """Read a published-format CSV (plain or gzip) as strings, with '?' as the only missing mark."""
    opener = gzip.open if is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", newline="") as handle:
        # NOTE: keep_default_na=False: "None" is a real A1Cresult / max_glu_serum category.
        return pd.read_csv(
            handle,
            dtype=str,
            keep_default_na=False,
            na_values=[MISSING_MARKER, ""],
            nrows=max_rows,
        )


def death_or_hospice(frame: pd.DataFrame) -> np.ndarray:
    """Mark rows whose discharge disposition rules out a readmission."""
    if _DISPOSITION not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    codes = frame[_DISPOSITION].fillna("").str.strip().str.replace(r"\.0$", "", regex=True)
    return codes.isin(_DEATH_OR_HOSPICE_TEXT).to_numpy()


def load_dataset(path: Path, max_rows: int | None = None) -> Dataset:
    """Read a file, keep labelled encounters that can be readmitted, and count the rest."""
    frame = read_frame(path, max_rows)
    if LABEL_COLUMN not in frame.columns:
        raise ValueError(f"{path} has no {LABEL_COLUMN!r} column, so it cannot be evaluated")
    excluded = death_or_hospice(frame)
    label_text = frame[LABEL_COLUMN].str.strip()
    unlabelled = label_text.isna().to_numpy() & ~excluded
    keep = ~excluded & ~unlabelled
    kept = frame[keep].reset_index(drop=True)
    labels = (label_text[keep] == POSITIVE_LABEL).to_numpy(dtype=np.int64)
    return Dataset(
        frame=kept,
        labels=labels,
        sha256=sha256_file(path),
        rows_read=len(frame),
        excluded_death_hospice=int(excluded.sum()),
        excluded_unlabelled=int(unlabelled.sum()),
    )


def _unit_hash(keys: list[str], seed: int) -> np.ndarray:
    """Map each key to a stable pseudo-random number in [0, 1) that depends only on key and seed."""
    out = np.empty(len(keys), dtype=np.float64)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "big") / 2.0**64
    return out


def split_keys(frame: pd.DataFrame) -> list[str]:
    """Return the grouping key of each row: the patient, else the encounter, else the row."""
    for column in ("patient_nbr", "encounter_id"):
        if column in frame.columns and frame[column].notna().all():
            return [f"{column}:{v.strip()}" for v in frame[column]]
    return [f"row:{i}" for i in range(len(frame))]


def split_assignment(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """Assign every row to split 0 (train), 1 (validation) or 2 (test), all of a patient together.

    A patient's split depends only on the patient and the seed, not on the rest of the file, so
    a subset or a superset of the data keeps every patient where it was.
    """
    keys = split_keys(frame)
    unique, inverse = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    u = _unit_hash(list(unique), seed)
    edges = np.cumsum(SPLIT_FRACTIONS)[:-1]
    per_key = np.searchsorted(edges, u, side="right")
    assignment: np.ndarray = per_key[inverse].astype(np.int64)
    return assignment
