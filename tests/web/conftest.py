"""Review-page fixtures: the app on SQLite with page cookies over plain HTTP, keys per role,
a live uvicorn server and headless Chromium."""

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# NOTE: the background-networking flags keep Chromium from calling out on a closed network.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SESSION_SECRET = "web-tests-session-secret-0123456789"


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """A SQLite database migrated to the newest schema (the page's logic is backend-neutral)."""
    from tests.support import migrate_to_head

    return migrate_to_head(f"sqlite:///{tmp_path / 'review.db'}")


@pytest.fixture
def settings(settings: Any) -> Any:
    """The suite's settings with cookies without Secure, since page tests speak plain HTTP."""
    from app.core.config import AuthSettings

    settings.auth = AuthSettings(session_secret=SESSION_SECRET, secure_cookies=False)
    return settings


def make_keys(app: Any) -> dict[str, str]:
    """Plain API keys, one per role and two clinicians (names are what the page shows)."""
    from app.auth.models import Role
    from app.auth.service import create_key

    plain = {}
    with app.state.database.session() as session:
        for label, name, role in [
            ("ehr", "EHR integration", Role.EHR),
            ("clinician", "Dr Ada Rivera", Role.CLINICIAN),
            ("clinician2", "Dr Ben Okafor", Role.CLINICIAN),
            ("admin", "Key admin", Role.ADMIN),
        ]:
            _, plain[label] = create_key(session=session, name=name, role=role)
    return plain


@dataclass
class LiveServer:
    """The real app served by uvicorn on a loopback port."""

    url: str
    app: Any
    keys: dict[str, str]

    def bearer(self, label: str) -> dict[str, str]:
        """Authorization header for the key `label`."""
        return {"Authorization": f"Bearer {self.keys[label]}"}


@pytest.fixture
def live_server(settings: Any) -> Iterator[LiveServer]:
    """Run `create_app(settings)` under uvicorn in a thread until the test ends."""
    import uvicorn

    from app.main import create_app
    from tests.support import free_port

    app = create_app(settings)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", app, make_keys(app))
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# NOTE: module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, which async tests in later modules could not start under.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright; skips when either is missing."""
    if not CHROMIUM.is_file() and shutil.which("chromium") is None:
        pytest.skip(f"Chromium not found at {CHROMIUM}: install Debian's chromium package")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    executable = str(CHROMIUM) if CHROMIUM.is_file() else shutil.which("chromium")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def artifacts_dir() -> Path:
    """Where browser tests leave screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
