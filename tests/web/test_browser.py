"""The review page driven in headless Chromium against the real app served by uvicorn."""

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.web.conftest import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.data, pytest.mark.slow]

DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "review-page.png"
UPDATE_DOCS_ENV = "TRIAGE_UPDATE_DOCS_SCREENSHOT"


def predict(server: LiveServer, encounters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score encounters through the JSON API as the EHR would; return the flagged answers."""
    response = httpx.post(
        f"{server.url}/predict/batch",
        json={"encounters": encounters},
        headers=server.bearer("ehr"),
        timeout=60,
    )
    assert response.status_code == 200, response.text
    flagged = [p for p in response.json()["predictions"] if p["flagged"]]
    assert flagged, "the test model should flag some of these encounters"
    return flagged


def signed_in_page(browser: Any, server: LiveServer, key_label: str) -> Any:
    """A fresh browser context signed in with the key `key_label` (keyboard only)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(f"{server.url}/review")
    assert page.url.endswith("/review/sign-in")
    page.get_by_label("Clinician or admin API key").fill(server.keys[key_label])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    return page


def shrink_png(path: Path) -> None:
    """Quantise a screenshot to a 128-colour palette so the committed image stays small."""
    image_module = pytest.importorskip("PIL.Image")
    with image_module.open(path) as image:
        small = image.convert("RGB").quantize(colors=128, dither=image_module.Dither.NONE)
    small.save(path, optimize=True)


def card(page: Any, encounter_id: str) -> Any:
    """The queue card of one encounter."""
    return page.locator(f'li.case[data-encounter="{encounter_id}"]')


def test_clinician_claims_and_resolves_a_flagged_case(
    browser, live_server, encounters, artifacts_dir
) -> None:
    flagged = predict(live_server, encounters[:60])
    page = signed_in_page(browser, live_server, "clinician")
    assert page.url.endswith("/review")
    assert page.get_by_text("Signed in as").is_visible()
    for answer in flagged:
        assert card(page, answer["encounter_id"]).count() == 1
    first = card(page, flagged[0]["encounter_id"])
    assert "Pending" in first.inner_text()
    assert "30-day readmission risk" in first.inner_text()
    assert "days" in first.inner_text() and "Primary diagnosis" in first.inner_text()
    page.screenshot(path=str(artifacts_dir / "review-queue.png"), full_page=True)

    with page.expect_navigation():
        first.get_by_role("button", name="Claim").click()
    assert "You claimed this case" in page.inner_text("main")
    assert page.locator("#case-status").inner_text() == "In review"
    assert page.locator("#case-assignee").inner_text().startswith("Dr Ada Rivera (key #")

    page.get_by_label("Override the model").check()
    note = "<b>Recent discharge</b>; will call the GP & review meds"
    page.get_by_label("Note").fill(note)
    page.get_by_label("Your risk estimate").fill("35")
    with page.expect_navigation():
        page.get_by_role("button", name="Record outcome").click()
    assert page.locator("#case-status").inner_text() == "Resolved"
    assert page.locator("#case-clinician-risk").inner_text() == "35.0%"
    assert page.locator("#case-outcome").inner_text() == "Override the model"
    assert page.locator("#case-note").inner_text() == note  # shown as text, not markup
    assert page.locator("#case-note b").count() == 0
    page.screenshot(path=str(artifacts_dir / "review-case.png"), full_page=True)

    with page.expect_navigation():
        page.get_by_role("link", name="Back to the queue").click()
    resolved = card(page, flagged[0]["encounter_id"])
    assert "Resolved" in resolved.inner_text() and "Dr Ada Rivera" in resolved.inner_text()
    page.context.close()


def test_a_second_clinician_cannot_claim_the_same_case(browser, live_server, encounters) -> None:
    flagged = predict(live_server, encounters[:60])
    target = flagged[0]["encounter_id"]
    ada = signed_in_page(browser, live_server, "clinician")
    ben = signed_in_page(browser, live_server, "clinician2")
    assert card(ben, target).get_by_role("button", name="Claim").is_visible()

    with ada.expect_navigation():
        card(ada, target).get_by_role("button", name="Claim").click()
    assert ada.locator("#case-status").inner_text() == "In review"

    # Ben's page still shows the claim button he loaded before Ada claimed.
    with ben.expect_navigation():
        card(ben, target).get_by_role("button", name="Claim").click()
    assert "already claimed by Dr Ada Rivera (key #" in ben.locator("#case-error").inner_text()
    assert ben.locator("#case-assignee").inner_text().startswith("Dr Ada Rivera (key #")
    assert ben.get_by_role("button", name="Record outcome").count() == 0
    assert ben.get_by_role("button", name="Release").count() == 0

    # Ada cannot finish it and gives it back; Ben can then take it.
    with ada.expect_navigation():
        ada.get_by_role("button", name="Release").click()
    assert ada.locator("#case-status").inner_text() == "Pending"
    assert "back in the queue" in ada.inner_text("main")
    ben.goto(f"{live_server.url}/review/cases/{flagged[0]['review_item_id']}")
    with ben.expect_navigation():
        ben.get_by_role("button", name="Claim this case").click()
    assert ben.locator("#case-assignee").inner_text().startswith("Dr Ben Okafor (key #")
    ada.context.close()
    ben.context.close()


def test_other_roles_are_refused(browser, live_server) -> None:
    page = signed_in_page(browser, live_server, "ehr")
    assert page.url.endswith("/review/sign-in")
    assert "clinician keys only" in page.get_by_role("alert").inner_text()
    page.goto(f"{live_server.url}/review")
    assert page.url.endswith("/review/sign-in")  # no session was started
    page.context.close()


def test_post_without_csrf_token_is_refused(browser, live_server, encounters) -> None:
    flagged = predict(live_server, encounters[:60])
    item_id = flagged[0]["review_item_id"]
    page = signed_in_page(browser, live_server, "clinician")
    # The context's request client carries the session cookie but not the form's token.
    refused = page.context.request.post(f"{live_server.url}/review/cases/{item_id}/claim", form={})
    assert refused.status == 403
    item = httpx.get(
        f"{live_server.url}/review-queue/{item_id}", headers=live_server.bearer("clinician")
    ).json()
    assert item["status"] == "pending" and item["assignee"] is None
    page.context.close()


def test_list_refreshes_without_a_reload(browser, live_server, encounters) -> None:
    predict(live_server, encounters[:30])
    page = signed_in_page(browser, live_server, "clinician")
    page.evaluate("window.__notReloaded = true")
    later = [a["encounter_id"] for a in predict(live_server, encounters[30:90])]
    assert card(page, later[0]).count() == 0
    page.get_by_role("button", name="Refresh list").click()
    card(page, later[0]).wait_for()
    assert page.evaluate("window.__notReloaded") is True
    assert "Updated" in page.locator("#refresh-status").inner_text()
    page.context.close()


def test_queue_page_screenshot(browser, live_server, encounters, artifacts_dir) -> None:
    """A representative queue (pending, in review, resolved) at laptop width, for the README."""
    flagged = predict(live_server, encounters[:120])
    by_std = sorted(flagged, key=lambda p: p["std"], reverse=True)
    clinician = httpx.Client(base_url=live_server.url, headers=live_server.bearer("clinician2"))
    with clinician:
        clinician.post(f"/review-queue/{by_std[1]['review_item_id']}/claim")
        clinician.post(f"/review-queue/{by_std[3]['review_item_id']}/claim")
        clinician.post(
            f"/review-queue/{by_std[3]['review_item_id']}/resolve",
            json={"outcome": "agree", "note": "Reviewed with the discharge team."},
        )
    page = signed_in_page(browser, live_server, "clinician")
    path = artifacts_dir / "review-page.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 10_000
    page.set_viewport_size({"width": 1024, "height": 900})
    overflow = page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    assert overflow is False, "the queue should fit a 1024px window without sideways scrolling"
    page.screenshot(path=str(artifacts_dir / "review-page-1024.png"))
    if os.environ.get(UPDATE_DOCS_ENV) == "1":
        page.set_viewport_size({"width": 1280, "height": 800})
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOT))
        shrink_png(DOCS_SCREENSHOT)
    page.context.close()
