"""EHR keys from a JWKS URL: read once and cached, re-read for a rotated-in kid (not too
often), and kept in use while the URL is down."""

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.cds.support import ISSUER, PUBLIC_URL, SIGNING, jwks, token

pytestmark = [
    pytest.mark.data,
    pytest.mark.parametrize("empty_database_url", ["sqlite"], indirect=True),
]
SEARCH = "/fhir/RiskAssessment"
QUERY = {"encounter": "e-1"}
NEW_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ROTATED = {**SIGNING, "rsa-2": (NEW_KEY, "RS384")}
SIGNERS = {**ROTATED, "nope": (NEW_KEY, "RS384")}  # "nope" is in no JWKS served


class JwksServer(ThreadingHTTPServer):
    """A local web server answering every GET with `document`; `reads` counts them."""

    document: dict[str, Any]
    reads: int

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"


class _Handler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        self.server.reads += 1
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer(("127.0.0.1", 0), _Handler)
    server.document, server.reads = jwks(), 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def stop(server: JwksServer) -> None:
    """Stop serving and close the port: connections are refused from now on."""
    server.shutdown()
    server.server_close()


@pytest.fixture
def jwks_timing() -> tuple[float, float]:
    """`jwks_cache_s` and `jwks_refetch_min_s` of the service under test."""
    return 300.0, 1.0


@pytest.fixture
def settings(settings: Any, jwks_server: JwksServer, jwks_timing: tuple[float, float]) -> Any:
    from app.core.config import CdsSettings

    cache_s, refetch_min_s = jwks_timing
    cds = CdsSettings(
        jwks_url=jwks_server.url,
        issuers=[ISSUER],
        public_url=PUBLIC_URL,
        jwks_cache_s=cache_s,
        jwks_refetch_min_s=refetch_min_s,
    )
    return settings.model_copy(update={"cds": cds})


async def _call(client: Any, kid: str = "rsa-1") -> Any:
    return await client.get(SEARCH, params=QUERY, headers=token(SEARCH, kid=kid, signing=SIGNERS))


async def test_keys_are_read_once_and_a_rotated_in_kid_is_read_again(client, jwks_server):
    assert (await _call(client)).status_code == 200
    assert (await _call(client, "ec-1")).status_code == 200
    assert jwks_server.reads == 1
    jwks_server.document = jwks(ROTATED)  # the EHR rotates a key in
    early = await _call(client, "rsa-2")  # within jwks_refetch_min_s of the first read
    assert early.status_code == 401 and "'rsa-2' is not in the configured JWKS" in early.text
    assert jwks_server.reads == 1
    time.sleep(1.05)
    assert (await _call(client, "rsa-2")).status_code == 200
    assert jwks_server.reads == 2
    for _ in range(5):  # unknown kids do not make the service read the URL again
        assert (await _call(client, "nope")).status_code == 401
    assert jwks_server.reads == 2


async def test_with_the_url_down_and_no_keys_read_a_jwt_is_503_naming_it(client, jwks_server):
    stop(jwks_server)
    response = await _call(client)
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert jwks_server.url in response.json()["detail"]


@pytest.mark.parametrize("jwks_timing", [(0.3, 0.0)])
async def test_with_the_url_down_the_keys_read_before_stay_in_use(client, jwks_server):
    assert (await _call(client)).status_code == 200
    stop(jwks_server)
    time.sleep(0.35)  # the cached keys are stale: the URL is tried, and fails
    assert (await _call(client)).status_code == 200
    assert (await _call(client, "ec-1")).status_code == 200
    assert jwks_server.reads == 1
