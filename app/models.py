"""Every domain's ORM models, imported in one place so `Base.metadata` is complete.

Each domain registers its models on `app.db.base.Base` and `app.db` imports none of them;
Alembic's environment and the schema tests import this module for the whole metadata.
"""

from app.auth.models import ApiKey, KeyEvent, PageSession
from app.cds.models import CardFeedback, RiskAssessmentRecord
from app.db.base import Base
from app.outcomes.models import OutcomeEvent, OutcomeRecord, ScoredEncounter
from app.review.models import ReviewEvent, ReviewItem

__all__ = [
    "ApiKey",
    "Base",
    "CardFeedback",
    "KeyEvent",
    "OutcomeEvent",
    "OutcomeRecord",
    "PageSession",
    "ReviewEvent",
    "ReviewItem",
    "RiskAssessmentRecord",
    "ScoredEncounter",
]
