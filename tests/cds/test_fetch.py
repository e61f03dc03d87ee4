"""A hook without prefetch, read from the EHR's FHIR server: the same answer as with prefetch,
and clear answers when the server may not or cannot be read (nothing stored)."""

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.cds.support import HOOK_URL, hook_request
from tests.conftest import count_rows

pytestmark = pytest.mark.data

FHIR = "https://fhir.hospital.test/r4"
TOKEN = "ehr-access-token"
Handler = Callable[[httpx.Request], httpx.Response]


def fhir_server(request: dict[str, Any], page_size: int | None = None) -> tuple[Handler, list[str]]:
    """A FHIR server holding the converter's resources for one row; it records each URL read.

    With `page_size`, searches answer in pages linked by `next`."""
    prefetch = request["prefetch"]
    pid, eid = request["context"]["patientId"], request["context"]["encounterId"]
    routes = {
        f"/r4/Patient/{pid}": prefetch["patient"],
        f"/r4/Encounter/{eid}": prefetch["encounter"],
        f"/r4/Condition?encounter={eid}": prefetch["conditions"],
        f"/r4/Observation?encounter={eid}": prefetch["observations"],
        f"/r4/MedicationRequest?encounter={eid}": prefetch["medicationRequests"],
        f"/r4/Procedure?encounter={eid}": prefetch["procedures"],
        f"/r4/Encounter?patient={pid}": prefetch["priorEncounters"],
    }
    read: list[str] = []

    def handle(http: httpx.Request) -> httpx.Response:
        read.append(str(http.url))
        if http.headers.get("authorization") != f"Bearer {TOKEN}":
            return httpx.Response(401)
        params = dict(http.url.params)
        page = int(params.pop("page", "0"))
        target = http.url.path + "".join(f"?{k}={v}" for k, v in params.items())
        body = routes.get(target)
        if body is None:
            return httpx.Response(404)
        if page_size is not None and body["resourceType"] == "Bundle":
            entries = body["entry"][page * page_size : (page + 1) * page_size]
            body = {**body, "entry": entries}
            if (page + 1) * page_size < len(routes[target]["entry"]):
                nxt = f"{FHIR}{target[3:]}&page={page + 1}"
                body["link"] = [{"relation": "next", "url": nxt}]
        return httpx.Response(200, json=body)

    return handle, read


def use(app: Any, handler: Handler, allowed: list[str] | None = None) -> None:
    """Point the app's FHIR client at `handler` and allow-list the stub server."""
    app.state.settings.cds.fhir_servers = [FHIR] if allowed is None else allowed
    app.state.fhir_client_factory = lambda timeout: httpx.AsyncClient(
        transport=httpx.MockTransport(handler), timeout=timeout
    )


def without_prefetch(request: dict[str, Any]) -> dict[str, Any]:
    """The hook as an EHR that does not prefetch sends it."""
    bare = {k: v for k, v in request.items() if k != "prefetch"}
    auth = {"access_token": TOKEN, "token_type": "Bearer", "expires_in": 300, "scope": "x"}
    return bare | {"fhirServer": FHIR, "fhirAuthorization": auth | {"subject": "triage"}}


async def test_a_fetched_hook_answers_exactly_what_the_prefetched_one_does(
    app, client, keys, flag_split
) -> None:
    flagged, unflagged = flag_split
    for row in (flagged[0], unflagged[0]):
        request = hook_request(row)
        handler, read = fhir_server(request)
        use(app, handler)
        sent = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
        fetched = await client.post(HOOK_URL, json=without_prefetch(request), headers=keys["ehr"])
        assert sent.status_code == 200 and fetched.status_code == 200, fetched.text
        assert fetched.json() == sent.json()
        assert len(read) == 7  # one read per prefetch template
    assert count_rows(app, "review_items") == 1


async def test_search_pages_are_followed_up_to_a_limit(app, client, keys, encounters) -> None:
    row = next(r for r in encounters if 20 < r["num_lab_procedures"] < 40)
    request = hook_request(row)
    handler, read = fhir_server(request, page_size=5)
    use(app, handler)
    sent = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    fetched = await client.post(HOOK_URL, json=without_prefetch(request), headers=keys["ehr"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == sent.json()
    assert any("page=4" in url for url in read)
    endless, _ = fhir_server(request, page_size=1)
    use(app, endless)
    capped = await client.post(HOOK_URL, json=without_prefetch(request), headers=keys["ehr"])
    assert capped.status_code == 412 and "more than 20 pages" in capped.json()["detail"]


async def test_a_partial_prefetch_fetches_only_the_missing_keys(
    app, client, keys, encounters
) -> None:
    request = hook_request(encounters[3])
    handler, read = fhir_server(request)
    use(app, handler)
    sent = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    partial = without_prefetch(request) | {
        "prefetch": {k: v for k, v in request["prefetch"].items() if k != "observations"}
    }
    fetched = await client.post(HOOK_URL, json=partial, headers=keys["ehr"])
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == sent.json()
    assert [url.split("/r4/")[1].split("?")[0] for url in read] == ["Observation"]


async def test_a_server_not_on_the_list_is_412_and_never_read(
    app, client, keys, encounters
) -> None:
    request = hook_request(encounters[0])
    handler, read = fhir_server(request)
    use(app, handler, allowed=["https://other.test/fhir"])
    answer = await client.post(HOOK_URL, json=without_prefetch(request), headers=keys["ehr"])
    assert answer.status_code == 412
    assert "TRIAGE_CDS__FHIR_SERVERS" in answer.json()["detail"]
    use(app, handler, allowed=[])
    answer = await client.post(HOOK_URL, json=without_prefetch(request), headers=keys["ehr"])
    assert answer.status_code == 412 and read == []
    assert count_rows(app, "risk_assessments") == 0


async def test_no_fhir_authorization_is_412(app, client, keys, encounters) -> None:
    request = hook_request(encounters[0])
    handler, read = fhir_server(request)
    use(app, handler)
    bare = {k: v for k, v in without_prefetch(request).items() if k != "fhirAuthorization"}
    answer = await client.post(HOOK_URL, json=bare, headers=keys["ehr"])
    assert answer.status_code == 412 and "fhirAuthorization" in answer.json()["detail"]
    assert read == []


async def test_a_timeout_is_503_with_retry_after_naming_the_server(
    app, client, keys, encounters
) -> None:
    def slow(http: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=http)

    use(app, slow)
    request = without_prefetch(hook_request(encounters[0]))
    answer = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert answer.status_code == 503 and int(answer.headers["retry-after"]) > 0
    assert FHIR in answer.json()["detail"]
    assert count_rows(app, "risk_assessments") == 0


@pytest.mark.parametrize(("status", "answered"), [(401, 412), (403, 412), (404, 412), (500, 502)])
async def test_a_refusing_server_names_the_resource_and_status(
    app, client, keys, encounters, status, answered
) -> None:
    def refuse(http: httpx.Request) -> httpx.Response:
        return httpx.Response(status if "Procedure" in http.url.path else 200, json={})

    use(app, refuse)
    request = without_prefetch(hook_request(encounters[0]))
    answer = await client.post(HOOK_URL, json=request, headers=keys["ehr"])
    assert answer.status_code == answered
    detail = answer.json()["detail"]
    assert f"answered {status}" in detail and "Procedure?encounter=" in detail
    assert count_rows(app, "risk_assessments") == 0
