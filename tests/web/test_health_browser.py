"""The model health page in headless Chromium, from outcomes posted through the API."""

import os
import re
from typing import Any

import httpx
import pytest

from tests.web.health_support import MIN_OUTCOMES, outcomes_body, with_discharges
from tests.web.test_browser import (
    DOCS_SCREENSHOT,
    UPDATE_DOCS_ENV,
    predict,
    shrink_png,
    signed_in_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.data, pytest.mark.slow]


@pytest.fixture
def settings(settings: Any) -> Any:
    """Figures from a few hundred outcomes."""
    from app.core.config import MonitoringSettings

    settings.monitoring = MonitoringSettings(min_outcomes=MIN_OUTCOMES)
    return settings


HEALTH_SCREENSHOT = DOCS_SCREENSHOT.with_name("model-health.png")
RESOLVED = MIN_OUTCOMES + 4
# NOTE: registered before any page script runs; the page's own CSP cannot block it.
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + (e.blockedURI || "inline"));
});
"""


def test_model_health_shows_charts_and_subgroups(
    browser, live_server, encounters, data_file, artifacts_dir
) -> None:
    sent = with_discharges(encounters[:400])
    flagged = predict(live_server, sent)
    with httpx.Client(base_url=live_server.url, headers=live_server.bearer("clinician")) as ada:
        for i, answer in enumerate(flagged[:RESOLVED]):
            item = f"/review-queue/{answer['review_item_id']}"
            assert ada.post(f"{item}/claim").status_code == 200
            # a clinician who leans a little above the model, and sometimes well above it
            risk = min(1.0, answer["probability"] * (1.3 if i % 2 else 2.0))
            body = {"outcome": "agree", "clinician_risk": round(risk, 3)}
            assert ada.post(f"{item}/resolve", json=body).status_code == 200
    posted = httpx.post(
        f"{live_server.url}/outcomes",
        json=outcomes_body(data_file, sent),
        headers=live_server.bearer("ehr"),
        timeout=60,
    )
    assert posted.status_code == 200, posted.text
    live_server.app.state.performance_job.run_once()

    page = signed_in_page(browser, live_server, "clinician")
    console: list[str] = []
    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
    page.add_init_script(CSP_WATCH)
    with page.expect_navigation():
        page.get_by_role("link", name="Model health").click()
    page.get_by_label("Window", exact=True).select_option("365d")
    with page.expect_navigation():
        page.get_by_role("button", name="Show").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("window=365d")
    for name in ("Reliability", "AUROC and calibration", "Flag rate"):
        chart = page.get_by_role("img", name=re.compile(name))
        assert chart.is_visible()
        assert chart.evaluate("img => img.complete && img.naturalWidth > 200")
    table = page.locator("#subgroups")
    assert table.is_visible()
    assert table.locator("tbody tr").count() > 8
    assert "too few outcomes" in table.inner_text()
    assert "Age" in table.inner_text() and "Admission type" in table.inner_text()
    clinicians = page.locator("#clinicians")
    assert page.locator("#clinicians-n").inner_text() == str(RESOLVED)
    assert re.fullmatch(r"\d+\.\d%", page.locator("#clinicians-agreement").inner_text())
    assert "inside the model's range" in clinicians.inner_text()
    assert page.evaluate("window.__cspViolations") == []
    assert not [m for m in console if "Content Security Policy" in m or m.startswith("error")]
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False, "the page should fit a 1280px window without sideways scrolling"
    path = artifacts_dir / "model-health.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 20_000
    if os.environ.get(UPDATE_DOCS_ENV) == "1":
        page.screenshot(path=str(HEALTH_SCREENSHOT), full_page=True)
        shrink_png(HEALTH_SCREENSHOT)
    page.context.close()
