"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest

DATA_ENV = "TRIAGE_DATA_DIR"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "diabetes130"
DATA_FILE = "diabetic_data.csv.gz"


@pytest.fixture(scope="session")
def data_file() -> Path:
    """The real data file: $TRIAGE_DATA_DIR, else ../shared/data/diabetes130/; skip if absent."""
    directory = Path(os.environ.get(DATA_ENV, DEFAULT_DATA_DIR))
    path = directory / DATA_FILE
    if not path.is_file():
        pytest.skip(f"real data not found at {path}; set {DATA_ENV} to the diabetes130 folder")
    return path
