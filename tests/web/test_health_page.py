"""The model health page in-process (no browser): empty state, figures, charts and their CSP."""

import re
from typing import Any

import pytest

from tests.web.conftest import make_keys
from tests.web.health_support import MIN_OUTCOMES, outcomes_body, with_discharges
from tests.web.test_pages import sign_in

pytestmark = pytest.mark.data


@pytest.fixture
def settings(settings: Any) -> Any:
    """Figures from a few hundred outcomes."""
    from app.core.config import MonitoringSettings

    settings.monitoring = MonitoringSettings(min_outcomes=MIN_OUTCOMES)
    return settings


async def _populate(app: Any, client: Any, keys: dict[str, str], encounters, data_file) -> None:
    sent = with_discharges(encounters[:300])
    ehr = {"Authorization": f"Bearer {keys['ehr']}"}
    scored = await client.post("/predict/batch", json={"encounters": sent}, headers=ehr)
    assert scored.status_code == 200, scored.text
    posted = await client.post("/outcomes", json=outcomes_body(data_file, sent), headers=ehr)
    assert posted.status_code == 200, posted.text
    app.state.performance_job.run_once()


async def test_signed_out_visitors_see_neither_page_nor_chart(client) -> None:
    page = await client.get("/review/health")
    assert page.status_code == 303 and page.headers["location"] == "/review/sign-in"
    chart = await client.get("/review/health/charts/reliability.svg?version=x&window=30d")
    assert chart.status_code == 401


async def test_without_outcomes_the_page_says_how_to_get_them(app, client, encounters) -> None:
    keys = make_keys(app)
    await sign_in(client, keys["clinician"])
    page = await client.get("/review/health")
    assert page.status_code == 200
    assert "No matured outcomes yet: post them to POST /outcomes" in page.text
    ehr = {"Authorization": f"Bearer {keys['ehr']}"}
    await client.post("/predict/batch", json={"encounters": encounters[:20]}, headers=ehr)
    app.state.performance_job.run_once()  # scores, but no outcome yet
    page = await client.get("/review/health")
    assert "No matured outcomes yet" in page.text and "<img" not in page.text


async def test_the_page_shows_the_snapshots_figures_and_charts(
    app, client, encounters, data_file
) -> None:
    keys = make_keys(app)
    await _populate(app, client, keys, encounters, data_file)
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    snapshot = (await client.get("/monitoring/performance", headers=admin)).json()
    [(version, figures)] = snapshot["model_versions"].items()
    year = figures["windows"]["365d"]
    everyone = year["cohorts"]["all"]

    await sign_in(client, keys["admin"])
    page = await client.get("/review/health", params={"window": "365d"})
    assert page.status_code == 200
    html = page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert f"{everyone['n']} matured outcomes" in html
    low, high = everyone["auroc_ci"]
    assert f"{everyone['auroc']:.3f} ({low:.3f}–{high:.3f})" in html
    assert '<option value="365d" selected>Last 365 days</option>' in html
    # every cohort is a row; one too small for figures says so
    rows = re.findall(r'<tr data-cohort="([^"]+)">', html)
    assert sorted(rows) == sorted(year["cohorts"])
    small = next(k for k, m in year["cohorts"].items() if m["auroc"] is None)
    row = html.split(f'<tr data-cohort="{small}">')[1].split("</tr>")[0]
    assert "too few outcomes" in row
    assert "No resolved cases with both a clinician" in html  # none resolved with an estimate

    charts = re.findall(r'<img src="([^"]+)"\s+alt="([^"]+)"', html)
    assert len(charts) == 3
    for src, alt in charts:
        assert alt.count(".") >= 2  # a title and a one-line summary
        chart = await client.get(src.replace("&amp;", "&"))
        assert chart.status_code == 200
        assert chart.headers["content-type"].startswith("image/svg+xml")
        policy = chart.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script" not in policy
        assert chart.text.lstrip().startswith("<?xml") and "<script" not in chart.text
    wrong = await client.get(f"/review/health/charts/pie.svg?version={version}&window=365d")
    assert wrong.status_code == 404
