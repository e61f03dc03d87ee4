"""A real Prometheus scrapes the running service; its query API agrees with the requests made."""

import contextlib
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    LOOPBACK,
    PROMETHEUS,
    prepare_database,
    prometheus,
    prometheus_value,
    triage_serve,
)

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.mark.skipif(PROMETHEUS is None, reason="Debian's prometheus is not installed")
def test_prometheus_scrape_matches_the_requests(
    tmp_path: Path, model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    url = f"sqlite:///{tmp_path / 'scrape.db'}"
    keys = prepare_database(url)
    ehr = {"Authorization": f"Bearer {keys['ehr']}"}
    clinician = {"Authorization": f"Bearer {keys['clinician']}"}
    with triage_serve(database_url=url, model_dir=model_dir, log_dir=tmp_path) as server:
        with httpx.Client(base_url=server.base_url, timeout=60) as http:
            singles = [http.post("/predict", json=e, headers=ehr).json() for e in encounters[:30]]
            batch = http.post("/predict/batch", json={"encounters": encounters[30:90]}, headers=ehr)
            answers = singles + batch.json()["predictions"]
            flagged = [a for a in answers if a["flagged"]]
            assert flagged, "the test model flags some of 90 encounters"
            claimed = flagged[0]["review_item_id"]
            assert http.post(f"/review-queue/{claimed}/claim", headers=clinician).is_success
        version = answers[0]["model_version"]
        with prometheus(f"{LOOPBACK}:{server.port}", tmp_path) as prom:
            selector = f'{{job="triage",model_version="{version}"}}'
            deadline = time.monotonic() + 60
            count = None
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):  # not ready yet
                    count = prometheus_value(prom, f"triage_prediction_std_count{selector}")
                    if count is not None:
                        break
                time.sleep(0.5)
            assert count == len(answers), f"Prometheus saw {count} predictions"
            std_sum = prometheus_value(prom, f"triage_prediction_std_sum{selector}")
            assert std_sum == pytest.approx(sum(a["std"] for a in answers), rel=1e-6)
            above = prometheus_value(prom, 'triage_prediction_std_bucket{job="triage",le="+Inf"}')
            assert above == len(answers)
            median = prometheus_value(prom, "histogram_quantile(0.5, triage_prediction_std_bucket)")
            assert median is not None and 0 < median < 0.5
            pending = prometheus_value(prom, 'triage_review_items{status="pending"}')
            in_review = prometheus_value(prom, 'triage_review_items{status="in_review"}')
            assert (pending, in_review) == (len(flagged) - 1, 1)
            flagged_total = prometheus_value(prom, 'triage_predictions_total{flagged="true"}')
            assert flagged_total == len(flagged)
            up = prometheus_value(prom, 'up{job="triage"}')
            assert up == 1
