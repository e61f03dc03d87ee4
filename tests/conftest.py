"""Fixtures shared by the whole suite."""

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import data_path


@pytest.fixture(scope="session")
def data_file() -> Path:
    """The real data file: $TRIAGE_DATA_DIR, else ../shared/data/diabetes130/; skip if absent."""
    path = data_path()
    if not path.is_file():
        pytest.skip(f"real data not found at {path}; set TRIAGE_DATA_DIR to the diabetes130 folder")
    return path


# --------------------------------------------------------------------------- service fixtures

POSTGRES_ENV = "TRIAGE_TEST_POSTGRES_URL"
N_ROWS = 4000


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A PostgreSQL server URL: $TRIAGE_TEST_POSTGRES_URL, else a throwaway local instance."""
    from tests.support import postgres, postgres_bindir

    if os.environ.get(POSTGRES_ENV):
        yield os.environ[POSTGRES_ENV]
        return
    if postgres_bindir() is None:
        pytest.skip(f"no PostgreSQL binaries (install Debian's postgresql or set {POSTGRES_ENV})")
    with postgres() as server:
        yield server.url


@contextlib.contextmanager
def _fresh_postgres_database(server_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"triage_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend (SQLite file, fresh PostgreSQL database)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'triage.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    with _fresh_postgres_database(server) as url:
        yield url


@pytest.fixture
def database_url(empty_database_url: str) -> str:
    """A database on each backend, migrated to the newest schema."""
    from tests.support import migrate_to_head

    return migrate_to_head(empty_database_url)


@pytest.fixture(scope="session")
def encounters(data_file: Path) -> list[dict[str, Any]]:
    """Real encounters from the data file in the API's request format."""
    from tests.support import published_rows

    return published_rows(data_file, N_ROWS)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory, data_file: Path) -> Path:
    """A tiny real model trained briefly on real rows, thresholded at the 80th std percentile."""
    import numpy as np
    import pandas as pd
    import torch

    from app.features import FeatureSpec
    from app.inference import BayesianMLP, MCDropoutEngine
    from app.inference.repository import save_model

    frame = pd.read_csv(data_file, keep_default_na=False, na_values=["?"], dtype=str, nrows=N_ROWS)
    columns = {c: frame[c].where(frame[c].notna(), None).tolist() for c in frame.columns}
    spec = FeatureSpec.fit(columns)
    x = torch.from_numpy(spec.encode(columns))
    y = torch.tensor((frame["readmitted"] == "<30").to_numpy(), dtype=torch.float32)
    torch.manual_seed(1234)
    model = BayesianMLP(spec.n_features, [32], 0.2)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    for _ in range(60):
        optimiser.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimiser.step()
    model.eval()
    std = MCDropoutEngine(model, device="cpu", default_seed=7).predict(x, n_samples=64).std
    threshold = float(np.quantile(std.numpy(), 0.8))
    card = {
        "version": "test-0.1",
        "feature_spec": spec.to_dict(),
        "calibration": {"method": "platt", "a": 1.0, "b": 0.0},
        "uncertainty": {"measure": "std", "threshold": threshold, "review_rate": 0.2},
        "mc": {"n_samples": 64, "seed": 7},
        "metrics": {},
        "data": {"rows": N_ROWS},
    }
    directory = tmp_path_factory.mktemp("models") / "test-0.1"
    save_model(model, card, directory)
    return directory


@pytest.fixture
def settings(database_url: str, model_dir: Path) -> Any:
    """Service settings on the parametrised database and the tiny model."""
    from app.core.config import Settings

    return Settings(
        database_url=database_url,
        model_dir=model_dir,
        inference={"device": "cpu", "max_batch_delay_us": 500, "threads": 1},
    )


@pytest.fixture
async def app(settings: Any) -> AsyncIterator[Any]:
    """The app with its lifespan running (model loaded, database open, batcher started)."""
    from app.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[Any]:
    """An HTTP client talking to the app in-process."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://triage.test") as http:
        yield http


@pytest.fixture
def keys(app: Any) -> dict[str, dict[str, str]]:
    """Authorization headers for one key per role (two clinicians)."""
    from app.auth.models import Role
    from app.auth.service import create_key

    headers = {}
    with app.state.database.session() as session:
        for label, role in [
            ("ehr", Role.EHR),
            ("clinician", Role.CLINICIAN),
            ("clinician2", Role.CLINICIAN),
            ("admin", Role.ADMIN),
        ]:
            _, key = create_key(session=session, name=f"{label}-test", role=role)
            headers[label] = {"Authorization": f"Bearer {key}"}
    return headers


@pytest.fixture
def flag_split(app: Any, encounters: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Real encounters the model flags and does not flag (scored directly, nothing stored)."""
    from app.inference.predictor import ScoringRequest

    predictor = app.state.predictor
    sample = encounters[:400]
    requests = [ScoringRequest(e, predictor.default_n_samples, None) for e in sample]
    predictions = predictor.predict(requests)
    flagged = [e for e, p in zip(sample, predictions, strict=True) if p.flagged]
    calm = [e for e, p in zip(sample, predictions, strict=True) if not p.flagged]
    assert len(flagged) >= 10 and len(calm) >= 10, "the test model should flag some, not all"
    return flagged, calm


def count_rows(app: Any, table: str) -> int:
    """Rows in one table of the app's database."""
    from sqlalchemy import text

    with app.state.database.session() as session:
        return int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
