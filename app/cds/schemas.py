"""The CDS Hooks 2.0 request and feedback bodies the service reads (other fields ignored)."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class HookContext(BaseModel):
    """The hook's context: whose chart, which encounter."""

    model_config = ConfigDict(extra="allow")

    patientId: str | None = Field(default=None, max_length=128)
    encounterId: str | None = Field(default=None, max_length=128)


class HookRequest(BaseModel):
    """A CDS Hooks call: the hook, its instance, the context and the prefetched resources."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(max_length=64)
    hookInstance: str = Field(max_length=128)
    context: HookContext
    prefetch: dict[str, Any] | None = Field(
        default=None, description="The resources of the discovery document's prefetch templates."
    )
    fhirServer: str | None = Field(default=None, max_length=2048)
    fhirAuthorization: dict[str, Any] | None = Field(
        default=None, description="OAuth 2.0 access to fhirServer: access_token, token_type, ..."
    )


class OverrideReason(BaseModel):
    """Why the clinician overrode the card: a coding and/or a comment."""

    model_config = ConfigDict(extra="ignore")

    reason: dict[str, Any] | None = Field(default=None, description="A Coding.")
    userComment: str | None = Field(default=None, max_length=2000)


class FeedbackEntry(BaseModel):
    """One card's outcome."""

    model_config = ConfigDict(extra="ignore")

    card: str = Field(max_length=64, description="The card's uuid.")
    outcome: Literal["accepted", "overridden"]
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime


class FeedbackRequest(BaseModel):
    """A CDS Hooks 2.0 feedback call."""

    model_config = ConfigDict(extra="ignore")

    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)
