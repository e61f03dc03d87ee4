"""The live-performance gauges on /metrics, and one computing worker when several share a
metrics folder."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from app.core.config import MonitoringSettings
from app.db.session import Database
from app.monitoring.job import PerformanceJob

pytestmark = pytest.mark.data

AGREED = (
    "triage_live_auroc", "triage_live_auroc_ci_low", "triage_live_auroc_ci_high",
    "triage_live_brier", "triage_live_calibration_intercept", "triage_live_calibration_slope",
    "triage_live_ece", "triage_live_observed_rate", "triage_live_predicted_rate",
    "triage_live_outcomes", "triage_live_flagged_readmitted_share", "triage_outcome_backlog",
    "triage_performance_computed_timestamp_seconds", "triage_performance_job_seconds",
)  # fmt: skip


async def test_the_agreed_gauges_appear_after_the_job_ran(app, client, keys, encounters) -> None:
    app.state.settings.monitoring.min_outcomes = 20
    day = (datetime.now(UTC).date() - timedelta(days=45)).isoformat()
    sent = [{**e, "discharge_date": day} for e in encounters[:300]]
    scored = await client.post("/predict/batch", json={"encounters": sent}, headers=keys["ehr"])
    assert scored.status_code == 200
    # NOTE: alternate outcomes, so both classes are present and every flagged share is defined
    outcomes = [
        {"encounter_id": e["encounter_id"], "readmitted": k % 3 == 0} for k, e in enumerate(sent)
    ]
    posted = await client.post("/outcomes", json={"outcomes": outcomes}, headers=keys["ehr"])
    assert posted.status_code == 200, posted.text
    await anyio.to_thread.run_sync(app.state.performance_job.run_once)
    text = (await client.get("/metrics")).text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    assert set(AGREED) <= names, set(AGREED) - names
    # the served card's reference (the tiny test card has no test metrics: no series)
    assert "# TYPE triage_reference_auroc gauge" in text
    assert 'triage_live_outcomes{cohort="all",model_version="test-0.1",window="30d"} 300.0' in text
    assert (
        await client.get("/monitoring/performance", headers=keys["clinician"])
    ).status_code == 403


def test_one_worker_computes_and_the_others_read_its_snapshot(database_url, tmp_path: Path):
    database = Database(database_url)
    settings = MonitoringSettings(interval_s=3600)
    try:
        jobs = [
            PerformanceJob(database, settings, references={}, shared_dir=str(tmp_path))
            for _ in range(2)
        ]
        for job in jobs:
            job.start()
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while any(job.snapshot() is None for job in jobs) and datetime.now(UTC) < deadline:
            anyio.run(anyio.sleep, 0.05)
        first, second = (job.snapshot() for job in jobs)
        # NOTE: the same `computed_at` to the microsecond: one computation, read by both
        assert first is not None and first == second
    finally:
        for job in jobs:
            job.stop()
        database.dispose()
