"""Every ORM model, imported in one place so `Base.metadata` is complete (Alembic, tests)."""

from app.auth.models import ApiKey, KeyEvent, PageSession
from app.db.base import Base
from app.review.models import ReviewEvent, ReviewItem

__all__ = ["ApiKey", "Base", "KeyEvent", "PageSession", "ReviewEvent", "ReviewItem"]
