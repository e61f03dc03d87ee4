"""The live-performance gauges for `/metrics`, read from the job's last snapshot.

A custom collector, evaluated by the worker that answers the scrape (as the review queue's
is), so the figures are not summed or duplicated across workers in multiprocess mode.
"""

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from app.monitoring.job import PerformanceJob

# Gauge name -> (the cohort figure it shows, help text)
_COHORT_GAUGES: Final = {
    "triage_live_auroc": ("auroc", "AUROC of matured outcomes."),
    "triage_live_brier": ("brier", "Brier score of matured outcomes."),
    "triage_live_calibration_intercept": (
        "calibration_intercept", "Calibration-in-the-large (0 is ideal).",
    ),
    "triage_live_calibration_slope": ("calibration_slope", "Calibration slope (1 is ideal)."),
    "triage_live_ece": ("ece", "Expected calibration error (15 equal-width bins)."),
    "triage_live_observed_rate": ("observed_rate", "Share of matured outcomes readmitted."),
    "triage_live_predicted_rate": ("predicted_rate", "Mean answered probability."),
    "triage_live_outcomes": ("n", "Matured outcomes."),
}  # fmt: skip
_LABELS: Final = ["model_version", "window", "cohort"]


class PerformanceCollector(Collector):
    """`triage_live_*`, `triage_reference_*` and the job's own gauges, from its snapshot."""

    def __init__(self, job: PerformanceJob) -> None:
        self.job = job

    def collect(self) -> Iterable[Metric]:
        """Every gauge of the last snapshot; none before the first one."""
        snapshot = self.job.snapshot()
        if snapshot is None:
            return
        gauges = {
            name: GaugeMetricFamily(name, text, labels=_LABELS)
            for name, (_, text) in _COHORT_GAUGES.items()
        }
        low = GaugeMetricFamily(
            "triage_live_auroc_ci_low", "AUROC bootstrap 95% interval, low end.", labels=_LABELS
        )
        high = GaugeMetricFamily(
            "triage_live_auroc_ci_high", "AUROC bootstrap 95% interval, high end.", labels=_LABELS
        )
        share = GaugeMetricFamily(
            "triage_live_flagged_readmitted_share",
            "Share of matured readmissions that had been flagged for review.",
            labels=["model_version", "window"],
        )
        ref_auroc = GaugeMetricFamily(
            "triage_reference_auroc", "The model card's test AUROC.", labels=["model_version"]
        )
        ref_ece = GaugeMetricFamily(
            "triage_reference_ece", "The model card's test ECE.", labels=["model_version"]
        )
        backlog = GaugeMetricFamily(
            "triage_outcome_backlog",
            "Encounters scored over 45 days ago with no outcome recorded.",
            labels=["model_version"],
        )
        for version, figures in snapshot["model_versions"].items():
            reference = figures["reference"]
            if reference.get("auroc") is not None:
                ref_auroc.add_metric([version], reference["auroc"])
            if reference.get("ece") is not None:
                ref_ece.add_metric([version], reference["ece"])
            backlog.add_metric([version], figures["backlog"])
            for window, found in figures["windows"].items():
                if found["flagged_readmitted_share"] is not None:
                    share.add_metric([version, window], found["flagged_readmitted_share"])
                for cohort, m in found["cohorts"].items():
                    labels = [version, window, cohort]
                    for name, (key, _) in _COHORT_GAUGES.items():
                        if m[key] is not None:
                            gauges[name].add_metric(labels, m[key])
                    if m["auroc_ci"] is not None:
                        low.add_metric(labels, m["auroc_ci"][0])
                        high.add_metric(labels, m["auroc_ci"][1])
        yield from gauges.values()
        yield from (low, high, share, ref_auroc, ref_ece, backlog)
        computed = GaugeMetricFamily(
            "triage_performance_computed_timestamp_seconds",
            "When live performance was last computed (Unix time).",
        )
        computed.add_metric([], _timestamp(snapshot["computed_at"]))
        seconds = GaugeMetricFamily(
            "triage_performance_job_seconds", "Wall time of the last live-performance computation."
        )
        seconds.add_metric([], snapshot["job_seconds"])
        yield computed
        yield seconds


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
