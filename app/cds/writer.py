"""Group commits of kept RiskAssessments: every hook answer waits for its own, committed with
the others waiting (the review queue's `GroupWriter`)."""

from app.cds.store import Json, Pending, keep_assessments
from app.db.session import Database
from app.review.writer import GroupWriter


class AssessmentWriter(GroupWriter[Pending, Json]):
    """Keeps RiskAssessments (start it before use)."""

    def __init__(self, database: Database, *, max_pending_writes: int = 4096) -> None:
        super().__init__(
            database,
            keep_assessments,
            max_pending_writes=max_pending_writes,
            name="assessment write",
        )

    async def keep(self, pending: Pending) -> Json:
        """The stored assessment of `pending`'s key (503 if the commit does not come in time)."""
        return await self._commit(pending)
