"""Model against clinicians in the live-performance snapshot: cases resolved with a clinician's
estimate and later given an outcome, all through the API, against a hand computation."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

pytestmark = pytest.mark.data

DISCHARGED = (datetime.now(UTC).date() - timedelta(days=40)).isoformat()


@pytest.fixture
def settings(settings: Any) -> Any:
    """Figures from a single outcome, so a handful of cases gives numbers."""
    from app.core.config import MonitoringSettings

    settings.monitoring = MonitoringSettings(min_outcomes=1)
    return settings


async def _resolve(client, keys, item_id: int, risk: float | None) -> None:
    claimed = await client.post(f"/review-queue/{item_id}/claim", headers=keys["clinician"])
    assert claimed.status_code == 200, claimed.text
    body: dict[str, Any] = {"outcome": "agree"}
    if risk is not None:
        body["clinician_risk"] = risk
    done = await client.post(
        f"/review-queue/{item_id}/resolve", json=body, headers=keys["clinician"]
    )
    assert done.status_code == 200, done.text


async def test_clinicians_block_matches_a_hand_computation(app, client, keys, flag_split) -> None:
    sent = [{**e, "discharge_date": DISCHARGED} for e in flag_split[0][:6]]
    scored = await client.post("/predict/batch", json={"encounters": sent}, headers=keys["ehr"])
    assert scored.status_code == 200, scored.text
    items = []
    for answer in scored.json()["predictions"]:
        read = await client.get(f"/review-queue/{answer['review_item_id']}", headers=keys["admin"])
        items.append(read.json())
    # inside the band, above it, below it, a bold guess; then no estimate; then no outcome
    first = items[0]
    risks = [
        (first["band_low"] + first["band_high"]) / 2,
        min(1.0, items[1]["band_high"] + 0.05),
        max(0.0, items[2]["band_low"] - 0.05),
        0.9,
        None,
        0.5,
    ]
    for item, risk in zip(items, risks, strict=True):
        await _resolve(client, keys, item["id"], risk)
    readmitted = [True, False, True, False, True]
    body = {
        "outcomes": [
            {"encounter_id": item["encounter_id"], "readmitted": r}
            for item, r in zip(items, readmitted, strict=False)
        ]
    }
    posted = await client.post("/outcomes", json=body, headers=keys["ehr"])
    assert posted.status_code == 200, posted.text

    app.state.performance_job.run_once()
    snapshot = await client.get("/monitoring/performance", headers=keys["admin"])
    assert snapshot.status_code == 200, snapshot.text
    [version] = snapshot.json()["model_versions"].values()

    cases = list(zip(items[:4], risks[:4], readmitted[:4], strict=True))
    y = [1.0 if r else 0.0 for _, _, r in cases]
    model = sum((i["probability"] - t) ** 2 for (i, _, _), t in zip(cases, y, strict=True)) / 4
    clinician = sum((c - t) ** 2 for (_, c, _), t in zip(cases, y, strict=True)) / 4
    inside = [i["band_low"] <= c <= i["band_high"] for i, c, _ in cases]
    assert inside[:3] == [True, False, False]
    for window in ("30d", "90d", "365d"):
        block = version["windows"][window]["clinicians"]
        assert block["n"] == 4
        assert block["brier_model"] == pytest.approx(model, abs=1e-12)
        assert block["brier_clinician"] == pytest.approx(clinician, abs=1e-12)
        assert block["agreement"] == pytest.approx(sum(inside) / 4, abs=1e-12)


async def test_cases_without_an_estimate_leave_the_block_empty(
    app, client, keys, flag_split
) -> None:
    sent = [{**e, "discharge_date": DISCHARGED} for e in flag_split[0][:2]]
    scored = await client.post("/predict/batch", json={"encounters": sent}, headers=keys["ehr"])
    for answer in scored.json()["predictions"]:
        await _resolve(client, keys, answer["review_item_id"], None)
    body = {"outcomes": [{"encounter_id": e["encounter_id"], "readmitted": True} for e in sent]}
    assert (await client.post("/outcomes", json=body, headers=keys["ehr"])).status_code == 200
    app.state.performance_job.run_once()
    snapshot = (await client.get("/monitoring/performance", headers=keys["admin"])).json()
    [version] = snapshot["model_versions"].values()
    assert version["windows"]["30d"]["cohorts"]["all"]["n"] == 2
    assert version["windows"]["30d"]["clinicians"] == {
        "n": 0,
        "brier_model": None,
        "brier_clinician": None,
        "agreement": None,
    }
