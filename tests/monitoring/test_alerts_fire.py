"""A shifted replay moves the live gauges and fires the shipped alert in a real Prometheus.

Real test-split encounters are scored by the shipped model in a `triage serve` process, their
true outcomes posted: the calibration gauges sit near their ideal and nothing fires. Then a
third of the readmissions are corrected away (the EHR "loses" them): the observed rate falls,
the calibration intercept moves and Prometheus, running `deploy/prometheus/alerts.yml`
unchanged, fires `TriageCalibrationDrift`.
"""

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support import (
    LOOPBACK,
    PROMETHEUS,
    ROOT,
    held_out_encounters,
    prepare_database,
    prometheus,
    prometheus_query,
    prometheus_value,
    triage_serve,
)

pytestmark = [
    pytest.mark.data,
    pytest.mark.slow,
    pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed"),
]

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
N = 2000
TODAY = datetime.now(UTC).date()
INTERCEPT = 'triage_live_calibration_intercept{window="90d",cohort="all"}'


def _post(http: httpx.Client, path: str, key: str, field: str, rows: list[dict]) -> None:
    for start in range(0, len(rows), 1000):
        body = {field: rows[start : start + 1000]}
        response = http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200, response.text


def _until(check, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s} s")


def _firing(prom: str) -> set[str]:
    alerts = httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_a_third_of_readmissions_lost_fires_calibration_drift(tmp_path: Path, data_file: Path):
    encounters, labels = held_out_encounters(data_file, N)
    for k, encounter in enumerate(encounters):  # discharges inside the 90-day window
        encounter["discharge_date"] = (TODAY - timedelta(days=31 + k % 85)).isoformat()
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    keys = prepare_database(url)
    env = {"TRIAGE_MONITORING__INTERVAL_S": "1"}
    with (
        triage_serve(database_url=url, log_dir=tmp_path, extra_env=env) as server,
        httpx.Client(base_url=server.base_url, timeout=120) as http,
        prometheus(f"{LOOPBACK}:{server.port}", tmp_path, rules=RULES) as prom,
    ):
        _post(http, "/predict/batch", keys["ehr"], "encounters", encounters)
        outcomes = [
            {"encounter_id": e["encounter_id"], "readmitted": bool(y)}
            for e, y in zip(encounters, labels, strict=True)
        ]
        _post(http, "/outcomes", keys["ehr"], "outcomes", outcomes)
        truthful = _until(lambda: prometheus_value(prom, INTERCEPT))
        assert abs(truthful) < 0.3, f"true outcomes: intercept {truthful}"
        time.sleep(3)  # a few rule evaluations on the truthful figures
        assert "TriageCalibrationDrift" not in _firing(prom)

        readmitted = np.flatnonzero(labels)
        lost = readmitted[np.random.default_rng(3).permutation(len(readmitted))][
            : len(readmitted) // 3
        ]
        corrections = [
            {"encounter_id": encounters[k]["encounter_id"], "readmitted": False, "correct": True}
            for k in lost
        ]
        _post(http, "/outcomes", keys["ehr"], "outcomes", corrections)
        shifted = _until(
            lambda: (v := prometheus_value(prom, INTERCEPT)) is not None and v < -0.3 and v
        )
        assert shifted < truthful - 0.3  # the observed rate fell by a third: log(2/3) ~ -0.4
        _until(lambda: "TriageCalibrationDrift" in _firing(prom))
        [alert] = [
            a
            for a in httpx.get(f"{prom}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
            if a["labels"]["alertname"] == "TriageCalibrationDrift"
        ]
        assert alert["labels"]["window"] == "90d" and alert["labels"]["cohort"] == "all"
        assert prometheus_query(prom, "triage_reference_auroc"), "the card's AUROC is exported"
