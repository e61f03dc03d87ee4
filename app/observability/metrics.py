"""Prometheus metrics: prediction and uncertainty distributions, batching, queue and HTTP.

With `PROMETHEUS_MULTIPROC_DIR` set (`triage serve --workers N`), metric values live in files
shared by the workers and a scrape aggregates them. A scrape also collects what a domain
counts at that moment (`exposition`'s collector), such as the review queue's sizes.
"""

import os
from bisect import bisect_left
from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from app.observability.access import RequestRecord

# NOTE: MC-dropout stds of a well-trained model sit mostly in 0.005-0.1, so the buckets are
# dense there; default Prometheus buckets (0.005 ... 10) would put nearly everything in two.
STD_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.06, 0.075,
    0.1, 0.125, 0.15, 0.2, 0.3, 0.5,
)  # fmt: skip
PROBABILITY_BUCKETS: Final = tuple(round(0.05 * k, 2) for k in range(1, 21))
BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
INFERENCE_BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)  # fmt: skip
HTTP_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# NOTE: the novelty score is observed as a multiple of the card's novelty threshold (1 = the
# flag line), so buckets and alerts mean the same for every model version and hidden width.
NOVELTY_BUCKETS: Final = (
    0.25, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0,
)  # fmt: skip

_MAX_CHILDREN: Final = 4096


def multiprocess_dir() -> str | None:
    """The shared metrics folder when running several workers, else None."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class Metrics:
    """Every metric the service records, registered on one registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry
        self._children: dict[tuple[Any, ...], Any] = {}
        r = registry
        self.prediction_std = Histogram(
            "triage_prediction_std",
            "MC-dropout std of each prediction (uncalibrated probability scale).",
            ["model_version"],
            buckets=STD_BUCKETS,
            registry=r,
        )
        self.prediction_probability = Histogram(
            "triage_prediction_probability",
            "Calibrated readmission probability of each prediction.",
            ["model_version"],
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "triage_predictions",
            "Encounters scored, by whether they were flagged for review.",
            ["model_version", "flagged"],
            registry=r,
        )
        self.flag_reasons = Counter(
            "triage_flag_reasons",
            "Flagged encounters by reason (a case with several reasons counts once for each).",
            ["model_version", "reason"],
            registry=r,
        )
        self.novelty = Histogram(
            "triage_novelty_score",
            "Domain-guard novelty score of each prediction, as a multiple of its flag threshold.",
            ["model_version"],
            buckets=NOVELTY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "triage_inference_batch_size",
            "Encounters per engine call (after micro-batching).",
            ["model_version"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference_seconds = Histogram(
            "triage_inference_seconds",
            "Wall time of one batched engine call.",
            ["model_version"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "triage_batcher_queue_depth",
            "Encounters waiting for the engine.",
            ["model_version"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_info = Gauge(
            "triage_model_info",
            "The served model (value 1): version, default MC samples and flag threshold.",
            ["version", "n_samples", "threshold"],
            registry=r,
            multiprocess_mode="max",
        )
        self.http_requests = Counter(
            "triage_http_requests",
            "HTTP requests by route template, method and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_seconds = Histogram(
            "triage_http_request_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )

    def child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: `.labels()` takes a lock and builds a key."""
        key = (metric, *labels)
        found = self._children.get(key)
        if found is None:
            if len(self._children) >= _MAX_CHILDREN:  # NOTE: odd methods or codes stay bounded
                self._children.clear()
            found = self._children[key] = metric.labels(*labels)
        return found

    def observe_scores(
        self,
        model_version: str,
        *,
        stds: Sequence[float],
        probabilities: Sequence[float],
        novelty: Sequence[float],
        flagged: int,
        total: int,
        reasons: Mapping[str, int],
    ) -> None:
        """Record one model version's answered predictions: distributions and flag counts."""
        # NOTE: counters are incremented once per label set and batch, histograms filled once
        # per batch (`observe_all`), not once per encounter.
        observe_all(self.child(self.prediction_std, model_version), stds)
        observe_all(self.child(self.prediction_probability, model_version), probabilities)
        observe_all(self.child(self.novelty, model_version), novelty)
        for label, n in (("true", flagged), ("false", total - flagged)):
            if n:
                self.child(self.predictions, model_version, label).inc(n)
        for label, n in reasons.items():
            self.child(self.flag_reasons, model_version, label).inc(n)

    def observe_batch(self, *, model_version: str, size: int, seconds: float) -> None:
        """Record one engine call."""
        self.child(self.batch_size, model_version).observe(size)
        self.child(self.inference_seconds, model_version).observe(seconds)

    def observe_requests(self, requests: Sequence[RequestRecord]) -> None:
        """Record answered HTTP requests: a count per status, a latency per route template."""
        answered: Tally[tuple[str, str, int]] = Tally()
        seconds: dict[tuple[str, str], list[float]] = {}
        for r in requests:
            answered[r.method, r.route, r.status] += 1
            seconds.setdefault((r.method, r.route), []).append(r.seconds)
        for (method, route, status), n in answered.items():
            self.child(self.http_requests, method, route, str(status)).inc(n)
        for (method, route), values in seconds.items():
            observe_all(self.child(self.http_seconds, method, route), values)

    def set_model(
        self, *, version: str, n_samples: int, threshold: float, flag_reasons: Iterable[str] = ()
    ) -> None:
        """Publish the served model's identity, with a zero series for each of `flag_reasons`."""
        self.model_info.labels(version, str(n_samples), repr(threshold)).set(1)
        for label in flag_reasons:
            self.flag_reasons.labels(version, label)  # NOTE: a zero series from the start


def observe_all(histogram: Any, values: Sequence[float]) -> None:
    """`histogram.observe(v)` for each of `values`: one count per bucket, one sum in all."""
    buckets = getattr(histogram, "_buckets", None)
    bounds = getattr(histogram, "_upper_bounds", None)
    # NOTE: the public way for a client version without these fields, and for a few values
    # (a Tally costs more than it saves there).
    if buckets is None or bounds is None or len(values) < 4:
        for value in values:
            histogram.observe(value)
        return
    # NOTE: `observe` counts a value in the first bucket whose bound is >= it (+Inf is last)
    # and a NaN in none; both add it to the sum.
    counts = Tally(bisect_left(bounds, value) for value in values if value == value)
    histogram._sum.inc(sum(values))
    for index, count in counts.items():
        buckets[index].inc(count)


def exposition(
    registry: CollectorRegistry | None, *collectors: Collector | None
) -> tuple[bytes, str]:
    """Render the metrics page: this process's registry, or all workers' in multiprocess mode,
    and what `collectors` (those not None) count at this moment."""
    if registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    scrape = CollectorRegistry()
    scrape.register(_Merged(registry, [c for c in collectors if c is not None]))
    return generate_latest(scrape), CONTENT_TYPE_LATEST


class _Merged(Collector):
    def __init__(self, registry: CollectorRegistry, extra: Sequence[Collector]) -> None:
        self.registry = registry
        self.extra = extra

    def collect(self) -> Iterable[Metric]:
        yield from self.registry.collect()
        for collector in self.extra:
            yield from collector.collect()
