"""Settings refuse unsafe or inconsistent values at start-up."""

import pytest
from pydantic import ValidationError

from app.core.config import Settings


@pytest.mark.parametrize(
    "env",
    [
        {"TRIAGE_DATABASE_URL": "mysql://x"},
        {"TRIAGE_AUTH__METRICS_TOKEN": "short"},
        {"TRIAGE_AUTH__SESSION_SECRET": "changemechangeme"},
        {"TRIAGE_INFERENCE__N_SAMPLES": "1"},
        {"TRIAGE_INFERENCE__MIN_N_SAMPLES": "500", "TRIAGE_INFERENCE__MAX_N_SAMPLES": "100"},
        {"TRIAGE_INFERENCE__DEVICE": "tpu"},
        {"TRIAGE_LOG_LEVEL": "chatty"},
        {"TRIAGE_ACTION_THRESHOLD": "0"},
        {"TRIAGE_ACTION_THRESHOLD": "1.2"},
        {"TRIAGE_REVIEW_PAGE_SIZE": "100", "TRIAGE_REVIEW_MAX_PAGE_SIZE": "10"},
    ],
)
def test_unsafe_values_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_DATABASE_URL", "postgresql+psycopg://u@h/db")
    monkeypatch.setenv("TRIAGE_INFERENCE__MAX_BATCH_SIZE", "64")
    monkeypatch.setenv("TRIAGE_LOG_LEVEL", "debug")
    monkeypatch.setenv("TRIAGE_ACTION_THRESHOLD", "0.2")
    settings = Settings()
    assert settings.action_threshold == 0.2
    assert settings.database_url.startswith("postgresql+psycopg")
    assert settings.inference.max_batch_size == 64 and settings.log_level == "DEBUG"
