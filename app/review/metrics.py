"""The review queue's sizes for `/metrics`.

Counted in the database at scrape time, so every replica reports the same, correct numbers.
"""

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.db.session import UNAVAILABLE_ERRORS, Database
from app.review.models import ReviewItem, ReviewStatus


class ReviewQueueCollector(Collector):
    """`triage_review_items{status,model_version}` counted in the database at scrape time."""

    def __init__(self, database: Database, model_version: str) -> None:
        self.database = database
        self.model_version = model_version

    def collect(self) -> Iterable[Metric]:
        """Count items per (model version, status); report the database as down on failure."""
        items = GaugeMetricFamily(
            "triage_review_items",
            "Review-queue items by status.",
            labels=["model_version", "status"],
        )
        up = GaugeMetricFamily("triage_database_up", "1 when the database answered the scrape.")
        counts = {(self.model_version, s.value): 0 for s in ReviewStatus}
        try:
            with self.database.sessionmaker() as session:
                query = select(ReviewItem.model_version, ReviewItem.status, func.count()).group_by(
                    ReviewItem.model_version, ReviewItem.status
                )
                for version, status, count in session.execute(query):
                    counts[(version, status)] = int(count)
        except UNAVAILABLE_ERRORS:
            up.add_metric([], 0)
            yield up
            return
        for (version, status), count in sorted(counts.items()):
            items.add_metric([version, status], count)
        up.add_metric([], 1)
        yield items
        yield up
