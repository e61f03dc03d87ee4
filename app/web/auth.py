"""Who is signed in to the review page: the API key behind a verified session cookie."""

from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Role
from app.auth.service import Principal

PAGE_ROLE = Role.CLINICIAN


def refusal_for(role: Role) -> str:
    """The message a key of another role sees when it tries to sign in."""
    return (
        f"This key has the role '{role.value}'. The review page is for clinician keys only; "
        "ask an administrator for a clinician key."
    )


def principal_for_key_id(*, session: Session, key_id: int) -> Principal | None:
    """The clinician whose key has row id `key_id`; None once the key is revoked or not clinical.

    Checked on every request, so revoking a key ends its page sessions at once.
    """
    row = session.get(ApiKey, key_id)
    if row is None or row.revoked_at is not None or row.role != PAGE_ROLE.value:
        return None
    return Principal(key_id=row.id, name=row.name, role=Role(row.role))
