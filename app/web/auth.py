"""Who is signed in to the review page: the API key behind a live, verified session cookie."""

from sqlalchemy.orm import Session

from app.auth.models import Role
from app.auth.service import Principal
from app.auth.sessions import live_key
from app.web.session import WebSession

PAGE_ROLE = Role.CLINICIAN


def refusal_for(role: Role) -> str:
    """The message a key of another role sees when it tries to sign in."""
    return (
        f"This key has the role '{role.value}'. The review page is for clinician keys only; "
        "ask an administrator for a clinician key."
    )


def principal_for(*, session: Session, web: WebSession) -> Principal | None:
    """The clinician of a signed-in cookie; None once signed out, expired, revoked or not clinical.

    Checked on every request, so sign-out and key revocation end the session at once, for
    every copy of its cookie.
    """
    if web.key_id is None:
        return None
    row = live_key(session=session, key_id=web.key_id, session_id=web.nonce)
    if row is None or row.role != PAGE_ROLE.value:
        return None
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))
