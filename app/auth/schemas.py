"""Bodies of the key-management API."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.auth.models import KeyAction, Role
from app.auth.service import MAX_NAME, key_label


class KeyOut(BaseModel):
    """An API key as admins see it: never the key itself, only its public prefix."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def label(self) -> str:
        """How the key is shown everywhere: 'name (key #id)'."""
        return key_label(self.name, self.id)


class KeyEventOut(BaseModel):
    """One audited change to a key."""

    model_config = ConfigDict(from_attributes=True)

    action: KeyAction
    actor: str = Field(description="The admin key's name, or 'cli:<OS user>'.")
    actor_key_id: int | None
    at: datetime


class KeyDetail(KeyOut):
    """A key with its audit trail."""

    events: list[KeyEventOut]


class KeyCreated(KeyOut):
    """A new key: `key` is shown this once and cannot be read again."""

    key: str


class KeyIn(BaseModel):
    """The key to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME, description="Who or what holds it.")
    role: Role
