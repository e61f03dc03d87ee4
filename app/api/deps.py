"""Typed dependency aliases: routes declare what they need, the lifespan provides it.

NOTE: the dependencies that only read app state are `async def`: FastAPI runs a plain `def`
dependency in the thread pool, and a thread hop per dependency per request is measurable.
"""

from collections.abc import Iterator
from typing import Annotated, Final

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.auth.cache import KeyCache
from app.auth.models import Role
from app.auth.service import Principal, authenticate, hash_key
from app.cds.tokens import EhrTokens, looks_like_jwt
from app.cds.writer import AssessmentWriter, TokenUseWriter
from app.core.config import Settings
from app.core.errors import UnavailableError
from app.db.base import MAX_ID
from app.db.session import Database
from app.inference.service import ScoringService
from app.observability.metrics import Metrics


def _state(request: Request, name: str) -> object:
    value = getattr(request.app.state, name, None)
    if value is None:
        raise UnavailableError("the service is starting; retry shortly")
    return value


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_metrics(request: Request) -> Metrics:
    """The app's metrics."""
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_database(request: Request) -> Database:
    """The database opened by the lifespan."""
    return _state(request, "database")  # type: ignore[return-value]


async def get_scoring(request: Request) -> ScoringService:
    """The data plane: scoring, and the review queue for flagged cases."""
    return _state(request, "scoring")  # type: ignore[return-value]


async def get_assessment_writer(request: Request) -> AssessmentWriter:
    """The group committer of the CDS path's RiskAssessments."""
    return _state(request, "assessment_writer")  # type: ignore[return-value]


SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
DatabaseDep = Annotated[Database, Depends(get_database)]
ScoringDep = Annotated[ScoringService, Depends(get_scoring)]
AssessmentWriterDep = Annotated[AssessmentWriter, Depends(get_assessment_writer)]


def get_session(database: DatabaseDep) -> Iterator[Session]:
    """A session for one request (sync routes run it in the thread pool)."""
    with database.session() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def get_principal(request: Request, database: DatabaseDep) -> Principal:
    """The caller, from its API key (401 without a valid one; 503 if the database hangs).

    A key verified within the cache's TTL is answered from memory (see `app.auth.cache`).
    """
    key = bearer_token(request)
    tokens: EhrTokens | None = getattr(request.app.state, "ehr_tokens", None)
    if key is not None and tokens is not None and looks_like_jwt(key):
        writer: TokenUseWriter = _state(request, "token_writer")  # type: ignore[assignment]
        return await tokens.verify(key, request.url.path, writer.first_use)
    cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
    if key is None or cache is None or not cache.enabled:
        return await database.run(_authenticate, database, key)
    digest = hash_key(key)
    principal = cache.get(digest)
    if principal is None:
        # NOTE: a revocation served while the database is asked must not be undone by caching
        # the answer it overtook.
        generation = cache.generation
        principal = await database.run(_authenticate, database, key)
        cache.put(digest, principal, generation=generation)
    return principal


def _authenticate(database: Database, key: str | None) -> Principal:
    # NOTE: a short connection of its own, so none is held while the model runs.
    with database.connect() as connection:
        return authenticate(session=connection, key=key)


_PRINCIPAL: Final = "triage.principal"


async def authorize(request: Request, *roles: Role) -> Principal:
    """The caller if it holds one of `roles` (401 without a valid key, 403 for another role).

    The key is looked up once per request: a route that checks its caller before reading the
    body (`app.api.routing`) and its dependency share the answer.
    """
    principal: Principal | None = request.scope.get(_PRINCIPAL)
    if principal is None:
        principal = await get_principal(request, await get_database(request))
        request.scope[_PRINCIPAL] = principal
    return principal.require(*roles)


# NOTE: declared, not enforced, by this scheme: it puts the scheme and the lock of every route
# that needs a key in the OpenAPI document; `authorize` answers a missing or bad key with 401.
bearer_scheme = HTTPBearer(
    scheme_name="ApiKey",
    bearerFormat="trg_<prefix>_<secret>",
    description="An API key from `triage apikey create`, sent as `Authorization: Bearer <key>`.",
    auto_error=False,
)


class Require:
    """`authorize` for `roles` as a dependency; it declares the bearer scheme in the docs."""

    def __init__(self, *roles: Role) -> None:
        self.roles = roles

    async def __call__(
        self,
        request: Request,
        _declared: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> Principal:
        return await authorize(request, *self.roles)


ClinicianDep = Annotated[Principal, Depends(Require(Role.CLINICIAN))]
AdminDep = Annotated[Principal, Depends(Require(Role.ADMIN))]
EhrDep = Annotated[Principal, Depends(Require(Role.EHR))]

# Ids in paths: a number beyond any row's id is refused with 422 before it reaches the driver
# (which raises OverflowError, a 500, on a value over 64 bits).
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The review item's id.")]
KeyId = Annotated[int, Path(ge=1, le=MAX_ID, description="The API key's id.")]
# NOTE: admins read the queue (to reassign a case they must see it) but never work it.
QueueReaderDep = Annotated[Principal, Depends(Require(Role.CLINICIAN, Role.ADMIN))]


async def get_key_cache(request: Request) -> KeyCache | None:
    """This process's cache of verified keys, if any."""
    cache: KeyCache | None = getattr(request.app.state, "key_cache", None)
    return cache


KeyCacheDep = Annotated[KeyCache | None, Depends(get_key_cache)]
