"""The review page in-process (no browser): sign-in, roles, CSRF, escaping, claim and resolve."""

import re
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.web.conftest import make_keys

pytestmark = pytest.mark.data

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def page_keys(app: Any) -> dict[str, str]:
    """Plain keys per role."""
    return make_keys(app)


def csrf(html: str) -> str:
    """The CSRF token in a rendered form."""
    match = CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    return match.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> httpx.Response:
    """Fetch the form, post the key with its token; return the answer (not followed)."""
    form = await client.get("/review/sign-in")
    assert form.status_code == 200
    return await client.post(
        "/review/sign-in", data={"api_key": key, "csrf_token": csrf(form.text)}
    )


async def flag_one(client: httpx.AsyncClient, keys: dict[str, str], encounters: list) -> int:
    """Post encounters until one is flagged; return its review item id."""
    headers = {"Authorization": f"Bearer {keys['ehr']}"}
    response = await client.post(
        "/predict/batch", json={"encounters": encounters[:80]}, headers=headers
    )
    assert response.status_code == 200, response.text
    ids = [p["review_item_id"] for p in response.json()["predictions"] if p["flagged"]]
    assert ids, "the test model should flag some of 80 encounters"
    return int(ids[0])


async def test_signed_out_visitor_is_sent_to_sign_in(client) -> None:
    response = await client.get("/review")
    assert response.status_code == 303 and response.headers["location"] == "/review/sign-in"
    form = await client.get("/review/sign-in")
    assert 'for="api_key"' in form.text and "Content-Security-Policy" in form.headers
    cookie = form.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/review" in cookie


async def test_clinician_signs_in_and_the_cookie_holds_no_key(client, page_keys) -> None:
    response = await sign_in(client, page_keys["clinician"])
    assert response.status_code == 303 and response.headers["location"] == "/review"
    cookie = response.headers["set-cookie"]
    assert page_keys["clinician"] not in cookie
    assert page_keys["clinician"].split("_", 2)[2] not in cookie  # the secret part
    page = await client.get("/review")
    assert page.status_code == 200 and "Dr Ada Rivera" in page.text


async def test_other_roles_are_refused(client, page_keys) -> None:
    response = await sign_in(client, page_keys["ehr"])
    assert response.status_code == 403
    assert "role &#39;ehr&#39;" in response.text and "clinician keys only" in response.text
    assert (await client.get("/review")).status_code == 303


async def test_an_admin_sees_model_health_but_not_the_queue(client, page_keys, encounters) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    response = await sign_in(client, page_keys["admin"])
    assert response.status_code == 303 and response.headers["location"] == "/review/health"
    health = await client.get("/review/health")
    assert health.status_code == 200 and "Key admin" in health.text
    assert ">Review queue</a>" not in health.text
    for path in ["/review", f"/review/cases/{item_id}"]:
        away = await client.get(path)
        assert away.status_code == 303 and away.headers["location"] == "/review/health"
    assert (await client.get("/review/list")).status_code == 401
    token = csrf(health.text)
    claim = await client.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
    assert claim.status_code == 303 and claim.headers["location"] == "/review/health"
    api = await client.get(
        f"/review-queue/{item_id}", headers={"Authorization": f"Bearer {page_keys['admin']}"}
    )
    assert api.json()["status"] == "pending"  # nothing changed


async def test_unknown_key_is_refused(client) -> None:
    response = await sign_in(client, "trg_000000000000_not-a-key")
    assert response.status_code == 401 and "not recognised" in response.text


async def test_posts_without_the_token_or_from_another_site_are_refused(
    client, page_keys, encounters
) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    await sign_in(client, page_keys["clinician"])
    no_token = await client.post(f"/review/cases/{item_id}/claim", data={})
    assert no_token.status_code == 403 and "expired" in no_token.text
    token = csrf((await client.get("/review")).text)
    wrong = await client.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token + "x"})
    assert wrong.status_code == 403
    foreign = await client.post(
        f"/review/cases/{item_id}/claim",
        data={"csrf_token": token},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403 and "another site" in foreign.text
    page = await client.get(f"/review/cases/{item_id}")
    assert 'id="case-status">Pending<' in page.text  # nothing changed


async def test_claim_and_resolve_with_an_escaped_note(client, page_keys, encounters) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    await sign_in(client, page_keys["clinician"])
    token = csrf((await client.get("/review")).text)
    claimed = await client.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
    assert claimed.status_code == 303
    page = await client.get(claimed.headers["location"])
    assert "In review" in page.text and "Dr Ada Rivera" in page.text
    note = '<script>alert("x")</script> & <b>bold</b>'
    resolved = await client.post(
        f"/review/cases/{item_id}/resolve",
        data={"csrf_token": token, "outcome": "override", "note": note},
    )
    assert resolved.status_code == 303
    page = await client.get(resolved.headers["location"])
    assert "Override the model" in page.text
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page.text
    )
    assert "<script>alert" not in page.text
    api = await client.get(
        f"/review-queue/{item_id}", headers={"Authorization": f"Bearer {page_keys['clinician']}"}
    )
    assert api.json()["status"] == "resolved" and api.json()["note"] == note


async def test_a_second_clinician_gets_a_conflict(app, page_keys, encounters) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://triage.test") as ada,
        httpx.AsyncClient(transport=transport, base_url="http://triage.test") as ben,
    ):
        item_id = await flag_one(ada, page_keys, encounters)
        await sign_in(ada, page_keys["clinician"])
        await sign_in(ben, page_keys["clinician2"])
        ada_token = csrf((await ada.get("/review")).text)
        ben_token = csrf((await ben.get("/review")).text)
        assert ada_token != ben_token
        first = await ada.post(f"/review/cases/{item_id}/claim", data={"csrf_token": ada_token})
        assert first.status_code == 303
        second = await ben.post(f"/review/cases/{item_id}/claim", data={"csrf_token": ben_token})
        assert second.status_code == 409 and "already claimed by Dr Ada Rivera" in second.text
        # One session's token is useless in another's.
        crossed = await ben.post(f"/review/cases/{item_id}/claim", data={"csrf_token": ada_token})
        assert crossed.status_code == 403


async def test_sign_out_clears_the_cookie(client, page_keys) -> None:
    await sign_in(client, page_keys["clinician"])
    token = csrf((await client.get("/review")).text)
    response = await client.post("/review/sign-out", data={"csrf_token": token})
    assert response.status_code == 303
    assert (
        'triage_session=""' in response.headers["set-cookie"]
        or "Max-Age=0" in (response.headers["set-cookie"])
    )
    assert (await client.get("/review")).status_code == 303


async def test_list_fragment_needs_a_session(client) -> None:
    response = await client.get("/review/list")
    assert response.status_code == 401


async def test_the_holder_releases_a_case_from_its_page(app, page_keys, encounters) -> None:
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://triage.test") as ada,
        httpx.AsyncClient(transport=transport, base_url="http://triage.test") as ben,
    ):
        item_id = await flag_one(ada, page_keys, encounters)
        await sign_in(ada, page_keys["clinician"])
        await sign_in(ben, page_keys["clinician2"])
        ada_token = csrf((await ada.get("/review")).text)
        ben_token = csrf((await ben.get("/review")).text)
        await ada.post(f"/review/cases/{item_id}/claim", data={"csrf_token": ada_token})
        assert 'id="release-button"' in (await ada.get(f"/review/cases/{item_id}")).text
        others_view = (await ben.get(f"/review/cases/{item_id}")).text
        assert 'id="release-button"' not in others_view and "is reviewing this case" in others_view

        url = f"/review/cases/{item_id}/release"
        assert (await ada.post(url, data={})).status_code == 403  # no CSRF token
        stolen = await ben.post(url, data={"csrf_token": ben_token})
        assert stolen.status_code == 409
        assert "already claimed by Dr Ada Rivera (key #" in stolen.text
        released = await ada.post(url, data={"csrf_token": ada_token})
        assert released.status_code == 303
        page = (await ada.get(released.headers["location"])).text
        assert 'id="case-status">Pending<' in page and "back in the queue" in page
        assert re.search(r"Released <span class=\"by\">by Dr Ada Rivera \(key #\d+\)", page)
        again = await ada.post(url, data={"csrf_token": ada_token})
        assert again.status_code == 409 and "nothing to release" in again.text
        taken = await ben.post(f"/review/cases/{item_id}/claim", data={"csrf_token": ben_token})
        assert taken.status_code == 303


async def test_a_superseded_case_shows_its_status_and_refuses_a_claim(
    client, page_keys, flag_split
) -> None:
    headers = {"Authorization": f"Bearer {page_keys['ehr']}"}
    ids = []
    for encounter in flag_split[0][:2]:  # two versions of one encounter, both flagged
        body = {**encounter, "encounter_id": "enc-page-versions"}
        response = await client.post("/predict", json=body, headers=headers)
        assert response.status_code == 200, response.text
        ids.append(response.json()["review_item_id"])
    first, second = ids
    await sign_in(client, page_keys["clinician"])
    page = await client.get(f"/review/cases/{first}")
    assert 'id="case-status">Superseded<' in page.text
    assert f"Superseded by case {second}" in page.text
    claim = await client.post(f"/review/cases/{first}/claim", data={"csrf_token": csrf(page.text)})
    assert claim.status_code == 409
    assert f"superseded by item {second}" in claim.text


async def test_a_case_shows_the_range_of_its_calibrated_passes(
    app, client, page_keys, encounters
) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    headers = {"Authorization": f"Bearer {page_keys['clinician']}"}
    item = (await client.get(f"/review-queue/{item_id}", headers=headers)).json()
    await sign_in(client, page_keys["clinician"])
    page = (await client.get(f"/review/cases/{item_id}")).text
    band = f"{item['band_low'] * 100:.1f}%–{item['band_high'] * 100:.1f}%"
    assert f"<strong>{band}</strong> · at least 90% of passes" in page
    assert "±2 SD" not in page
    # A case stored before bands were kept shows none, rather than one made up from the std.
    with app.state.database.session() as session:
        session.execute(
            text("UPDATE review_items SET band_low = NULL, band_high = NULL WHERE id = :id"),
            {"id": item_id},
        )
        session.commit()
    page = (await client.get(f"/review/cases/{item_id}")).text
    assert "<strong>not recorded</strong>" in page and band not in page


async def test_resolve_records_the_clinicians_risk_estimate(client, page_keys, encounters) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    await sign_in(client, page_keys["clinician"])
    token = csrf((await client.get("/review")).text)
    await client.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
    url = f"/review/cases/{item_id}/resolve"
    form = {"csrf_token": token, "outcome": "agree", "note": "seen on the ward"}
    for typed, words in [
        ("high", "Your risk estimate &#39;high&#39; is not a number"),
        ("150", "must lie between 0% and 100%"),
        ("nan", "must lie between 0% and 100%"),
    ]:
        refused = await client.post(url, data={**form, "risk": typed})
        assert refused.status_code == 422, typed
        assert words in refused.text and "such as 25 for 25%" in refused.text
        assert f'value="{typed}"' in refused.text and "seen on the ward</textarea>" in refused.text
        assert 'value="agree" required checked' in refused.text
    resolved = await client.post(url, data={**form, "risk": "35 %"})
    assert resolved.status_code == 303
    page = (await client.get(resolved.headers["location"])).text
    assert 'id="case-clinician-risk">35.0%<' in page
    assert "Resolved: Agree with the model · clinician&#39;s risk estimate 35.0%" in page
    api = await client.get(
        f"/review-queue/{item_id}", headers={"Authorization": f"Bearer {page_keys['clinician']}"}
    )
    assert api.json()["clinician_risk"] == pytest.approx(0.35)


async def test_resolve_without_an_estimate_says_none_was_given(
    client, page_keys, encounters
) -> None:
    item_id = await flag_one(client, page_keys, encounters)
    await sign_in(client, page_keys["clinician"])
    token = csrf((await client.get("/review")).text)
    await client.post(f"/review/cases/{item_id}/claim", data={"csrf_token": token})
    form = {"csrf_token": token, "outcome": "override", "risk": ""}
    resolved = await client.post(f"/review/cases/{item_id}/resolve", data=form)
    assert resolved.status_code == 303
    page = (await client.get(resolved.headers["location"])).text
    assert 'id="case-clinician-risk">Not given<' in page
