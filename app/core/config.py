"""One `Settings` for the whole service, read from `TRIAGE_*` environment variables.

Nested groups use a double underscore: `TRIAGE_INFERENCE__DEVICE=cuda`.
"""

from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The model repository unless `model_repository` says otherwise; inference reads it too.
DEFAULT_MODEL_REPOSITORY: Final = Path("models") / "readmission"
MIN_SECRET_LENGTH = 16
MAX_ISSUER_LENGTH: Final = 255  # the width of `token_uses.issuer`
WEAK_SECRETS = frozenset({"changeme", "changethis", "secret", "password", "changemechangeme"})


class InferenceSettings(BaseModel):
    """How the MC-dropout engine and the micro-batcher run."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where inference runs: `auto` takes CUDA when available, else the CPU."""
    n_samples: int | None = Field(default=None, ge=2)
    """Default number of MC-dropout samples; None takes the model card's default. Must lie
    within `min_n_samples` and `max_n_samples`."""
    min_n_samples: int = Field(default=2, ge=2)
    """Smallest `n_samples` a request may ask for."""
    max_n_samples: int = Field(default=2048, ge=2, le=65536)
    """Largest `n_samples` a request may ask for (bounds the cost of one request)."""
    max_batch_size: int = Field(default=256, ge=1, le=65536)
    """Most encounters coalesced into one engine call."""
    max_batch_delay_us: int = Field(default=2000, ge=0, le=1_000_000)
    """Longest a request waits for others to join its batch, in microseconds."""
    batch_settle_turns: int = Field(default=4, ge=0, le=1000)
    """A batch also closes once this many event-loop turns pass without a new request (later
    arrivals were not sent yet); 0 always waits out `max_batch_delay_us`."""
    inline_max_items: int = Field(default=64, ge=0, le=65536)
    """Batches of at most this many encounters are scored on the event loop (a thread would
    wait for the interpreter lock the loop holds), larger ones on a worker thread; 0 sends
    every batch to the thread."""
    max_queue_size: int = Field(default=4096, ge=1)
    """Most encounters waiting for the engine; beyond it the API answers 503 with Retry-After."""
    threads: int | None = Field(default=1, ge=1)
    """CPU threads for inference; None keeps PyTorch's default (one per core). One by default:
    add workers rather than threads, since a second thread competes with the event loop."""


class AuthSettings(BaseModel):
    """API keys and the metrics endpoint's protection."""

    metrics_token: str | None = None
    """Bearer token `/metrics` requires; None leaves it open (scraped on a private network)."""
    session_secret: str | None = None
    """Secret that signs review-page session cookies; None derives a random one per process."""
    secure_cookies: bool = True
    """Mark session cookies Secure (turn off only for plain-HTTP local testing)."""
    key_cache_ttl_s: float = Field(default=30.0, ge=0, le=3600)
    """Seconds a verified API key is trusted without a database lookup (per worker): during a
    database outage unflagged cases are still answered, but a revoked key keeps working for up
    to this long. 0 checks the database on every request."""

    @field_validator("metrics_token", "session_secret")
    @classmethod
    def _strong_secret(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_SECRET_LENGTH:
            raise ValueError(f"secrets must be at least {MIN_SECRET_LENGTH} characters long")
        if value is not None and value.lower() in WEAK_SECRETS:
            raise ValueError("refusing a well-known placeholder secret; generate a random one")
        return value


class CdsSettings(BaseModel):
    """How EHRs calling the CDS Hooks service prove who they are (besides API keys)."""

    jwks_path: Path | None = None
    """JWKS file of the keys the EHRs sign their CDS Hooks JWTs with (RS384 or ES384), read at
    start-up; set this or `jwks_url` to accept JWTs, neither to accept API keys only."""
    jwks_url: str | None = None
    """URL of the EHRs' JWKS (https), read when a JWT first comes and cached; set this or
    `jwks_path`, not both."""
    jwks_cache_s: float = Field(default=300.0, gt=0, le=86_400)
    """Seconds keys read from `jwks_url` are used before the JWKS is read again."""
    jwks_refetch_min_s: float = Field(default=30.0, ge=0, le=3600)
    """Least seconds between two reads of `jwks_url`: a JWT naming an unknown `kid` (a key
    rotated in) reads it again at most this often, so unknown kids cannot flood the issuer."""
    issuers: list[str] = []
    """JWT issuers (`iss`) accepted, a JSON list; each acts with the `ehr` role, others get 401."""
    public_url: str | None = None
    """This service's base URL as EHRs call it: a JWT's `aud` must be it plus the path called."""
    fhir_servers: list[str] = []
    """FHIR server base URLs a hook's `fhirServer` may name to fetch what its prefetch lacks, a
    JSON list; empty never fetches (a closed list, so a hook cannot point the service anywhere)."""
    fhir_timeout_s: float = Field(default=5.0, gt=0, le=60)
    """Longest one FHIR read may take before the hook gets a 503 naming the server."""

    @field_validator("issuers")
    @classmethod
    def _short_issuers(cls, issuers: list[str]) -> list[str]:
        if any(len(i) > MAX_ISSUER_LENGTH for i in issuers):
            raise ValueError(f"each issuer must be at most {MAX_ISSUER_LENGTH} characters")
        return issuers

    @field_validator("jwks_url")
    @classmethod
    def _web_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError("cds.jwks_url must be an https:// (or http://) URL")
        return url

    @model_validator(mode="after")
    def _complete(self) -> "CdsSettings":
        if self.jwks_path is not None and self.jwks_url is not None:
            raise ValueError("set one of cds.jwks_path and cds.jwks_url, not both")
        has_jwks = self.jwks_path is not None or self.jwks_url is not None
        if has_jwks and (not self.issuers or not self.public_url):
            raise ValueError("cds.jwks_path or cds.jwks_url needs cds.issuers and cds.public_url")
        if self.issuers and not has_jwks:
            raise ValueError(
                "cds.issuers needs the keys their JWTs are signed with: set cds.jwks_path (a"
                " JWKS file) or cds.jwks_url"
            )
        return self


class MonitoringSettings(BaseModel):
    """The live-performance job: how often it runs, over which windows, from how many outcomes."""

    interval_s: float = Field(default=300.0, ge=1, le=86_400)
    """Seconds between two computations of live performance (each reads every stored score
    with its outcome once; the figures on /metrics and /monitoring/performance are the last)."""
    windows_days: list[int] = Field(default=[30, 90, 365], min_length=1)
    """Windows of discharge dates, in days, each ending on the last day whose 30-day outcome
    window has closed (a JSON list)."""
    min_outcomes: int = Field(default=200, ge=1)
    """Fewest matured outcomes a cohort needs for its figures (else null): at a 10% readmission
    rate 200 give about 20 readmissions, an AUROC known to about +-0.07 and a calibration fit
    that converges; fewer would show noise as drift."""

    @field_validator("windows_days")
    @classmethod
    def _positive_windows(cls, days: list[int]) -> list[int]:
        if any(d < 1 or d > 3660 for d in days) or len(set(days)) != len(days):
            raise ValueError("monitoring.windows_days: distinct whole days between 1 and 3660")
        return days


class Settings(BaseSettings):
    """Service settings; every field has a `TRIAGE_` environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="TRIAGE_", env_nested_delimiter="__", extra="ignore", env_file=None
    )

    database_url: str = "sqlite:///./triage.db"
    """SQLAlchemy URL: a SQLite file by default, `postgresql+psycopg://...` for deployments."""
    database_timeout_s: float = Field(default=5.0, gt=0, le=120)
    """Longest a database connect or statement may take before the request gets a 503."""
    database_pool_size: int = Field(default=20, ge=2, le=500)
    """PostgreSQL connections each serving process keeps open for reuse. A replica holds up to
    workers x (pool size + overflow): keep every replica's total under the server's
    `max_connections` (docs/production.md)."""
    database_max_overflow: int = Field(default=20, ge=0, le=500)
    """PostgreSQL connections a serving process may open beyond its pool at a peak, each closed
    after use."""
    model_dir: Path | None = None
    """Model version folder; None takes the newest version under `models/readmission/`."""
    model_repository: Path = DEFAULT_MODEL_REPOSITORY
    """Where model versions live when `model_dir` is not set."""
    max_batch_encounters: int = Field(default=1000, ge=1, le=100_000)
    """Most encounters one `POST /predict/batch` may carry."""
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    """Largest request body accepted; larger ones get 413 before parsing."""
    shutdown_drain_s: float = Field(default=0.0, ge=0, le=300)
    """Seconds between SIGTERM and the start of shutdown during which `/readyz` answers 503 and
    requests are still served, so a load balancer stops routing here before the listening
    socket closes. Set it above the balancer's health-check or endpoint propagation time
    (Kubernetes: a few seconds); 0 shuts down at once."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Root log level."""
    opentelemetry: bool = False
    """FastAPI's native OpenTelemetry hooks (traces, metrics and logs through the globally
    configured providers). Off by default: the service exports Prometheus metrics."""
    review_page_size: int = Field(default=50, ge=1, le=500)
    """Review items per page unless a request asks for another size."""
    review_max_page_size: int = Field(default=500, ge=1, le=10_000)
    """Most review items one page may hold."""
    action_threshold: float | None = Field(default=None, gt=0, lt=1)
    """Calibrated risk at or above which the recommended action is to act (e.g. enrol in a
    transitional-care programme); None takes the model card's (chosen on validation). Only the
    action moves: the decision-flip flag keeps the level fitted at the card's threshold, so its
    flag rate drifts from the review budget until `triage report-referral --action-threshold`
    refits it."""
    inference: InferenceSettings = InferenceSettings()
    auth: AuthSettings = AuthSettings()
    cds: CdsSettings = CdsSettings()
    monitoring: MonitoringSettings = MonitoringSettings()

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, url: str) -> str:
        if not url.startswith(("sqlite", "postgresql")):
            raise ValueError("database_url must be a sqlite:// or postgresql+psycopg:// URL")
        return url

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: object) -> object:
        return level.upper() if isinstance(level, str) else level

    @model_validator(mode="after")
    def _sample_bounds(self) -> "Settings":
        inf = self.inference
        if inf.min_n_samples > inf.max_n_samples:
            raise ValueError("inference.min_n_samples is above inference.max_n_samples")
        if (
            inf.n_samples is not None
            and not inf.min_n_samples <= inf.n_samples <= inf.max_n_samples
        ):
            raise ValueError("inference.n_samples is outside [min_n_samples, max_n_samples]")
        if self.review_page_size > self.review_max_page_size:
            raise ValueError("review_page_size is above review_max_page_size")
        return self
