"""Replay: real test-split encounters scored through the service over simulated past months,
their outcomes posted, the job run once; the live figures equal the offline ones, on SQLite
and PostgreSQL."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from app.training.metrics import (
    auroc,
    brier,
    calibration_intercept,
    calibration_slope,
    ece,
)
from tests.support import held_out_encounters

pytestmark = pytest.mark.data

# NOTE: a few thousand rows of the test split, not all ~15,000: scoring and posting them
# twice (both backends) would make this test minutes long for no more evidence.
N_REPLAY = 3000
BATCH = 1000
TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def replay(data_file: Path) -> tuple[list[dict[str, Any]], np.ndarray]:
    """Test-split encounters in the API's format, a discharge date each, and their labels."""
    encounters, labels = held_out_encounters(data_file, N_REPLAY)
    for k, encounter in enumerate(encounters):
        # NOTE: discharges spread over the twelve months before the last closed window
        encounter["discharge_date"] = (TODAY - timedelta(days=31 + k % 360)).isoformat()
    return encounters, labels


async def test_live_figures_equal_the_offline_ones(app, client, keys, replay) -> None:
    encounters, labels = replay
    answered: list[dict[str, Any]] = []
    for start in range(0, len(encounters), BATCH):
        chunk = {"encounters": encounters[start : start + BATCH]}
        response = await client.post("/predict/batch", json=chunk, headers=keys["ehr"])
        assert response.status_code == 200, response.text
        answered += response.json()["predictions"]
    outcomes = []
    for encounter, label in zip(encounters, labels, strict=True):
        readmitted_on = None
        if label:
            readmitted_on = date.fromisoformat(encounter["discharge_date"]) + timedelta(days=9)
        outcomes.append(
            {
                "encounter_id": encounter["encounter_id"],
                "readmitted": bool(label),
                "readmitted_on": None if readmitted_on is None else readmitted_on.isoformat(),
            }
        )
    for start in range(0, len(outcomes), BATCH):
        body = {"outcomes": outcomes[start : start + BATCH]}
        response = await client.post("/outcomes", json=body, headers=keys["ehr"])
        assert response.status_code == 200, response.text
    before = await client.get("/monitoring/performance", headers=keys["admin"])
    job = app.state.performance_job
    await anyio.to_thread.run_sync(job.run_once)
    response = await client.get("/monitoring/performance", headers=keys["admin"])
    assert response.status_code == 200, response.text
    assert before.status_code in (200, 503)
    version = response.json()["model_versions"]["test-0.1"]
    window = version["windows"]["365d"]
    assert window["to"] == (TODAY - timedelta(days=30)).isoformat()

    p = np.array([a["probability"] for a in answered])
    flagged = np.array([a["flagged"] for a in answered])
    y = labels.astype(np.int64)
    for cohort, rows in (("all", slice(None)), ("flagged", flagged), ("unflagged", ~flagged)):
        live = window["cohorts"][cohort]
        assert live["n"] == len(y[rows]) and live["events"] == int(y[rows].sum())
        expected = {
            "auroc": auroc(y[rows], p[rows]),
            "brier": brier(y[rows], p[rows]),
            "ece": ece(y[rows], p[rows]),
            "calibration_slope": calibration_slope(y[rows], p[rows]),
            "calibration_intercept": calibration_intercept(y[rows], p[rows]),
        }
        for name, value in expected.items():
            assert live[name] == pytest.approx(value, abs=1e-9), (cohort, name)
        lo, hi = live["auroc_ci"]
        assert lo < live["auroc"] < hi
    # a cohort below the minimum has its counts but no figures
    small = [m for m in window["cohorts"].values() if 0 < m["n"] < 200]
    assert small and all(m["auroc"] is None and m["brier"] is None for m in small)
    assert sum(m["n"] for c, m in window["cohorts"].items() if c.startswith("age:")) == len(y)
    assert sum(month["n"] for month in window["over_time"]) == len(y)
    assert version["backlog"] == 0

    metrics = (await client.get("/metrics")).text
    labels_all = 'cohort="all",model_version="test-0.1",window="365d"'
    for name, key in (("auroc", "auroc"), ("brier", "brier"), ("ece", "ece")):
        [line] = [
            s for s in metrics.splitlines() if s.startswith(f"triage_live_{name}{{{labels_all}}}")
        ]
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(
            window["cohorts"]["all"][key], abs=1e-12
        )
