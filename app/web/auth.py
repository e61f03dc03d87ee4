"""Who is signed in to the review pages: the API key behind a live, verified session cookie.

Clinicians work the queue and see model health; administrators see model health only.
"""

from sqlalchemy.orm import Session

from app.auth.models import Role
from app.auth.service import Principal
from app.auth.sessions import live_key
from app.web.session import WebSession

PAGE_ROLE = Role.CLINICIAN
"""The role that works the review queue."""
PAGE_ROLES = frozenset({Role.CLINICIAN, Role.ADMIN})
"""The roles that may sign in: administrators for the model health page only."""
HEALTH_PATH = "/review/health"


def home_for(role: Role) -> str:
    """Where a signed-in key lands: the queue for a clinician, model health for an admin."""
    return "/review" if role == PAGE_ROLE else HEALTH_PATH


def refusal_for(role: Role) -> str:
    """The message a key of another role sees when it tries to sign in."""
    return (
        f"This key has the role '{role.value}'. The review page is for clinician keys only "
        "(administrators may sign in to see model health); ask an administrator for a "
        "clinician key."
    )


def principal_for(*, session: Session, web: WebSession) -> Principal | None:
    """The clinician or admin of a signed-in cookie; None once signed out, expired, revoked or
    of another role.

    Checked on every request, so sign-out and key revocation end the session at once, for
    every copy of its cookie.
    """
    if web.key_id is None:
        return None
    row = live_key(session=session, key_id=web.key_id, session_id=web.nonce)
    if row is None or row.role not in {r.value for r in PAGE_ROLES}:
        return None
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))
