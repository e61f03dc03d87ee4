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


@pytest.mark.parametrize(
    ("cds", "named"),
    [
        (
            {"JWKS_PATH": "/keys.jwks", "JWKS_URL": "https://ehr.example.org/jwks"},
            "set one of cds.jwks_path and cds.jwks_url, not both",
        ),
        ({}, "cds.issuers needs the keys their JWTs are signed with"),
        ({"JWKS_URL": "ftp://ehr.example.org/jwks"}, "https://"),
        ({"JWKS_URL": "https://ehr.example.org/jwks", "JWKS_CACHE_S": "0"}, "jwks_cache_s"),
    ],
)
def test_ehr_jwt_keys_come_from_exactly_one_place(
    monkeypatch: pytest.MonkeyPatch, cds: dict[str, str], named: str
) -> None:
    monkeypatch.setenv("TRIAGE_CDS__ISSUERS", '["https://ehr.example.org"]')
    monkeypatch.setenv("TRIAGE_CDS__PUBLIC_URL", "https://triage.example.org")
    for name, value in cds.items():
        monkeypatch.setenv(f"TRIAGE_CDS__{name}", value)
    with pytest.raises(ValidationError, match=named.replace(".", r"\.")):
        Settings()


def test_a_jwks_url_is_read_with_its_cache_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRIAGE_CDS__ISSUERS", '["https://ehr.example.org"]')
    monkeypatch.setenv("TRIAGE_CDS__PUBLIC_URL", "https://triage.example.org")
    monkeypatch.setenv("TRIAGE_CDS__JWKS_URL", "https://ehr.example.org/jwks")
    cds = Settings().cds
    assert cds.jwks_url == "https://ehr.example.org/jwks" and cds.jwks_path is None
    assert (cds.jwks_cache_s, cds.jwks_refetch_min_s) == (300.0, 30.0)
