"""The commands the Dockerfile and compose file run, run natively: db upgrade, apikey, serve."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import free_port

pytestmark = [pytest.mark.data, pytest.mark.slow]


def _triage(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_ready(base: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, "triage serve exited early"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("triage serve did not become ready")


def test_serve_with_two_workers_aggregates_metrics(
    tmp_path: Path, model_dir: Path, encounters: list[dict[str, Any]]
) -> None:
    env = {
        **os.environ,
        "TRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'triage.db'}",
        "TRIAGE_MODEL_DIR": str(model_dir),
        "TRIAGE_INFERENCE__THREADS": "1",
        "TRIAGE_INFERENCE__DEVICE": "cpu",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    _triage("db", "upgrade", env=env)
    key = _triage("apikey", "create", "--role", "ehr", "--name", "ehr", env=env).splitlines()[-1]
    port = free_port()
    serve = [sys.executable, "-m", "app", "serve", "--port", str(port), "--workers", "2"]
    process = subprocess.Popen(
        serve, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process)
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            for encounter in encounters[:20]:
                assert http.post("/predict", json=encounter).status_code == 200
            # NOTE: each scrape hits one worker; the total must be all workers' predictions.
            for _ in range(4):
                text = http.get("/metrics").text
                total = sum(
                    s.value
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                    if s.name == "triage_predictions_total"
                )
                assert total == 20
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
    records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {"model loaded"} <= {record["message"] for record in records}
