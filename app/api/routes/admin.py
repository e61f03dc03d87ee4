"""Key management (role admin): list, create and revoke API keys, each change audited."""

from fastapi import APIRouter

from app.api.deps import AdminDep, KeyCacheDep, KeyId, SessionDep
from app.api.responses import error_responses
from app.auth import service
from app.auth.schemas import KeyCreated, KeyDetail, KeyIn, KeyOut
from app.auth.service import Actor

router = APIRouter(
    prefix="/admin", tags=["admin"], responses=error_responses(401, 403, 404, 409, 422, 503)
)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(_principal: AdminDep, session: SessionDep) -> list[KeyOut]:
    """Every key, revoked ones too, oldest first (never the keys themselves)."""
    return [KeyOut.model_validate(row) for row in service.list_keys(session=session)]


@router.post("/keys", response_model=KeyCreated, status_code=201)
def create_key(body: KeyIn, principal: AdminDep, session: SessionDep) -> KeyCreated:
    """Create a key; the answer holds it this once. 409 if a live key of the role has the name."""
    row, key = service.create_key(
        session=session, name=body.name, role=body.role, actor=Actor.of(principal)
    )
    return KeyCreated.model_validate({**KeyOut.model_validate(row).model_dump(), "key": key})


@router.get("/keys/{key_id}", response_model=KeyDetail)
def read_key(key_id: KeyId, _principal: AdminDep, session: SessionDep) -> KeyDetail:
    """One key with its audit trail."""
    return _detail(session, key_id)


@router.post("/keys/{key_id}/revoke", response_model=KeyDetail)
def revoke_key(
    key_id: KeyId, principal: AdminDep, session: SessionDep, cache: KeyCacheDep
) -> KeyDetail:
    """Revoke a key: its API use and review-page sessions end. 404 if unknown, 409 if revoked."""
    service.revoke_key(session=session, key_id=key_id, actor=Actor.of(principal))
    if cache is not None:
        cache.forget(key_id)
    return _detail(session, key_id)


def _detail(session: SessionDep, key_id: int) -> KeyDetail:
    row = service.get_key(session=session, key_id=key_id)
    events = service.key_events(session=session, key_id=key_id)
    return KeyDetail.model_validate({**KeyOut.model_validate(row).model_dump(), "events": events})
