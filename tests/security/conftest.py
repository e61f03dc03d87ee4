"""Security fixtures: the app with page cookies over plain HTTP, so the review page can be read."""

from pathlib import Path
from typing import Any

import pytest

SESSION_SECRET = "security-tests-session-secret-0123"


@pytest.fixture
def settings(database_url: str, model_dir: Path) -> Any:
    """Service settings on each backend, with cookies usable over the test's plain HTTP."""
    from app.core.config import Settings

    return Settings(
        database_url=database_url,
        model_dir=model_dir,
        max_body_bytes=64 * 1024,
        inference={"device": "cpu", "max_batch_delay_us": 500, "threads": 1},
        auth={"session_secret": SESSION_SECRET, "secure_cookies": False},
    )
