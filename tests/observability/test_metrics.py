"""`/metrics` values match the requests made; logs carry a request id and no patient data."""

import asyncio
import json
import logging
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.data


async def _scrape(client: Any, headers: dict | None = None) -> dict[tuple, float]:
    response = await client.get("/metrics", headers=headers or {})
    assert response.status_code == 200, response.text
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def _get(values: dict, name: str, **labels: str) -> float:
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_match_the_requests(client, keys, flag_split) -> None:
    flagged, calm = flag_split
    batch = flagged[:5] + calm[:7]
    response = await client.post("/predict/batch", json={"encounters": batch}, headers=keys["ehr"])
    assert response.status_code == 200
    await client.post("/predict", json=flagged[0], headers=keys["ehr"])  # a retry: same item
    first = response.json()["predictions"][0]["review_item_id"]
    await client.post(f"/review-queue/{first}/claim", headers=keys["clinician"])
    await client.post("/predict", json={"encounter_id": "x", "age": "old"}, headers=keys["ehr"])

    v = await _scrape(client)
    version = "test-0.1"
    assert _get(v, "triage_predictions_total", model_version=version, flagged="true") == 6
    assert _get(v, "triage_predictions_total", model_version=version, flagged="false") == 7
    assert _get(v, "triage_prediction_std_count", model_version=version) == 13
    assert _get(v, "triage_prediction_probability_count", model_version=version) == 13
    predictions = response.json()["predictions"]
    stds = [p["std"] for p in predictions] + [predictions[0]["std"]]  # the retry of flagged[0]
    assert _get(v, "triage_prediction_std_sum", model_version=version) == pytest.approx(sum(stds))
    assert _get(v, "triage_review_items", model_version=version, status="pending") == 4
    assert _get(v, "triage_review_items", model_version=version, status="in_review") == 1
    assert _get(v, "triage_review_items", model_version=version, status="resolved") == 0
    assert _get(v, "triage_database_up") == 1
    assert _get(v, "triage_inference_batch_size_sum", model_version=version) == 13
    assert _get(v, "triage_inference_seconds_count", model_version=version) >= 2
    assert _get(v, "triage_batcher_queue_depth", model_version=version) == 0
    threshold = repr(predictions[0]["threshold"])
    info = {"n_samples": "64", "threshold": threshold, "version": version}
    assert _get(v, "triage_model_info", **info) == 1
    http = dict(method="POST", route="/predict", status="200")
    assert _get(v, "triage_http_requests_total", **http) == 1
    assert _get(v, "triage_http_requests_total", method="POST", route="/predict", status="422") == 1
    assert (
        _get(v, "triage_http_requests_total", method="POST", route="/predict/batch", status="200")
        == 1
    )
    assert (
        _get(
            v,
            "triage_http_requests_total",
            method="POST",
            route="/review-queue/{item_id}/claim",
            status="200",
        )
        == 1
    )


def test_std_buckets_resolve_small_values() -> None:
    from app.observability.metrics import STD_BUCKETS

    assert min(STD_BUCKETS) <= 0.001 and max(STD_BUCKETS) >= 0.2
    assert sum(b <= 0.05 for b in STD_BUCKETS) >= 8


@pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)
async def test_metrics_token(app, client) -> None:
    app.state.settings.auth.metrics_token = "s3cret-metrics-token-123"
    assert (await client.get("/metrics")).status_code == 401
    wrong = {"Authorization": "Bearer s3cret-metrics-token-124"}
    assert (await client.get("/metrics", headers=wrong)).status_code == 401
    right = {"Authorization": "Bearer s3cret-metrics-token-123"}
    assert (await client.get("/metrics", headers=right)).status_code == 200


@pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True)
async def test_logs_are_json_with_a_request_id_and_no_patient_data(
    client, keys, flag_split, capsys
) -> None:
    from app.observability.logging import JsonFormatter

    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Capture(level=logging.DEBUG)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        encounter = flag_split[0][0]
        response = await client.post(
            "/predict", json=encounter, headers={**keys["ehr"], "X-Request-ID": "req-123"}
        )
        bad = {**encounter, "medical_specialty": "Leak<Me>"}
        await client.post("/predict", json=bad, headers=keys["ehr"])
        await asyncio.sleep(0)  # the access lines are written at the end of the loop turn
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    err = capsys.readouterr().err  # the access log writes to stderr itself
    lines += [line for line in err.splitlines() if line.startswith("{")]
    assert response.headers["x-request-id"] == "req-123"
    records = [json.loads(line) for line in lines]
    access = [r for r in records if r["message"] == "request"]
    assert access and access[0]["request_id"] == "req-123" and access[0]["route"] == "/predict"
    text = "\n".join(lines)
    for field in ("encounter_id", "patient_nbr", "diag_1", "medical_specialty"):
        value = encounter.get(field)
        if value is not None:
            # NOTE: as a whole value: a code such as 648 also turns up inside a random
            # request id (...cb76487...) or a timestamp's milliseconds (46.648) now and then.
            whole = rf"(?<![0-9A-Za-z.]){re.escape(str(value))}(?![0-9A-Za-z.])"
            assert re.search(whole, text) is None, field
    assert "Leak" not in text


async def test_a_client_gone_mid_body_is_a_499_logged_at_info(app, client, keys, caplog) -> None:
    """A client that hangs up before sending its whole body is its own doing: counted as 499
    (apart from the service's 500s) and logged without a traceback."""
    messages = [
        {"type": "http.request", "body": b'{"encounter_id": "enc-gone", "ag', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        pass

    authorization = keys["ehr"]["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"triage.test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"4000"),
            (b"authorization", authorization),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("triage.test", 80),
        "state": {},
    }
    with caplog.at_level(logging.INFO):
        await app(scope, receive, send)
        await asyncio.sleep(0.2)  # the request counter is flushed once per event-loop turn
        v = await _scrape(client)
    assert _get(v, "triage_http_requests_total", method="POST", route="/predict", status="499") == 1
    assert _get(v, "triage_http_requests_total", method="POST", route="/predict", status="500") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
