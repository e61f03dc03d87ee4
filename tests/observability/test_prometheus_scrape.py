"""A real Prometheus scrapes the running service; its query API agrees with the requests made."""

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import LOOPBACK, free_port, prepare_database, triage_serve

pytestmark = [pytest.mark.data, pytest.mark.slow]

PROMETHEUS = shutil.which("prometheus")
CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: triage
    static_configs:
      - targets: ["{target}"]
"""


def _query(base: str, promql: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{base}/api/v1/query", params={"query": promql}, timeout=5).json()
    assert answer["status"] == "success", answer
    return list(answer["data"]["result"])


def _value(base: str, promql: str) -> float | None:
    result = _query(base, promql)
    return float(result[0]["value"][1]) if result else None


@contextlib.contextmanager
def _prometheus(target: str, tmp_path: Path) -> Any:
    config = tmp_path / "prometheus.yml"
    config.write_text(CONFIG.format(target=target))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            str(PROMETHEUS),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


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
        with _prometheus(f"{LOOPBACK}:{server.port}", tmp_path) as prom:
            selector = f'{{job="triage",model_version="{version}"}}'
            deadline = time.monotonic() + 60
            count = None
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError, ValueError):  # not ready yet
                    count = _value(prom, f"triage_prediction_std_count{selector}")
                    if count is not None:
                        break
                time.sleep(0.5)
            assert count == len(answers), f"Prometheus saw {count} predictions"
            std_sum = _value(prom, f"triage_prediction_std_sum{selector}")
            assert std_sum == pytest.approx(sum(a["std"] for a in answers), rel=1e-6)
            above = _value(prom, 'triage_prediction_std_bucket{job="triage",le="+Inf"}')
            assert above == len(answers)
            median = _value(prom, "histogram_quantile(0.5, triage_prediction_std_bucket)")
            assert median is not None and 0 < median < 0.5
            pending = _value(prom, 'triage_review_items{status="pending"}')
            in_review = _value(prom, 'triage_review_items{status="in_review"}')
            assert (pending, in_review) == (len(flagged) - 1, 1)
            flagged_total = _value(prom, 'triage_predictions_total{flagged="true"}')
            assert flagged_total == len(flagged)
            up = _value(prom, 'up{job="triage"}')
            assert up == 1
