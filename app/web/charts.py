"""The model health page's charts: SVG drawn on the server from one snapshot, with their text.

matplotlib's object-oriented API only (`Figure` on the SVG canvas, never pyplot), so drawing is
safe off the main thread; each chart is drawn once per snapshot (`ChartCache`).
"""

import io
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from matplotlib.axes import Axes
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from app.web.health import fixed, share

# Okabe-Ito colours (told apart with colour-blindness), and each line has its own marker too.
BLUE: Final = "#0072B2"
ORANGE: Final = "#E69F00"
GREEN: Final = "#009E73"
GREY: Final = "#7a828c"
CHARTS: Final = ("reliability", "over-time", "flags")


@dataclass(frozen=True)
class ChartText:
    """What a chart says to someone who cannot see it: a title and a one-line summary."""

    title: str
    summary: str


def _number(value: Any) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if ok and math.isfinite(value) else math.nan


def _rate(cohort: Mapping[str, Any]) -> float | None:
    """A cohort's readmission rate from its counts (known even where its figures are not)."""
    n = cohort.get("n") or 0
    return (cohort.get("events") or 0) / n if n else None


def _months(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return list(data.get("over_time") or [])


def texts(data: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, ChartText]:
    """Each chart's title and summary for one window's figures."""
    bins = [b for b in data.get("reliability") or [] if b.get("count")]
    everyone = (data.get("cohorts") or {}).get("all") or {}
    if bins:
        worst = max(bins, key=lambda b: abs(_number(b["observed"]) - _number(b["predicted"])))
        calibration = (
            f"ECE {fixed(everyone.get('ece')) or 'not known'}"
            f" (test set {fixed(reference.get('ece')) or 'not known'}); the largest gap: "
            f"{share(worst['predicted'])} predicted, {share(worst['observed'])} observed"
            f" (n = {worst['count']})."
        )
    else:
        calibration = "Too few outcomes to compare predicted and observed rates."
    months = _months(data)
    known = [m for m in months if m.get("auroc") is not None]
    if known:
        first, last = known[0], known[-1]
        trend = (
            f"AUROC {fixed(first['auroc'])} in {first['month']} and {fixed(last['auroc'])} in "
            f"{last['month']} (test set {fixed(reference.get('auroc')) or 'not known'}); ECE "
            f"{fixed(last.get('ece')) or 'not known'} and calibration slope "
            f"{fixed(last.get('calibration_slope'), 2) or 'not known'} in {last['month']}."
        )
    else:
        trend = "Too few outcomes in any month for an AUROC."
    flagged = [m for m in months if m.get("flagged_readmitted_rate") is not None]
    if flagged:
        last = flagged[-1]
        flags = (
            f"In {last['month']}, {share(last['flag_rate'])} of encounters were flagged; "
            f"{share(last.get('flagged_readmitted_rate')) or 'an unknown share'} of the flagged "
            f"were readmitted, against {share(_rate(everyone)) or 'unknown'} of all in the "
            f"window; {share(last.get('flagged_readmitted_share')) or 'an unknown share'} of "
            "readmissions had been flagged."
        )
    else:
        flags = "No flag rates yet."
    return {
        "reliability": ChartText("Reliability: predicted against observed risk", calibration),
        "over-time": ChartText("AUROC and calibration by month of discharge", trend),
        "flags": ChartText("Flag rate and flagged cases later readmitted", flags),
    }


def _svg(figure: Figure) -> str:
    FigureCanvasSVG(figure)
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    return out.getvalue()


def _style(ax: Axes) -> None:
    ax.grid(True, color="#e3e7ec", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _month_ticks(ax: Axes, labels: list[str]) -> None:
    """Month labels under the axis: every other one past eight months, slanted past four."""
    step = 2 if len(labels) > 8 else 1
    ticks = list(range(0, len(labels), step))
    ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=45 if len(labels) > 4 else 0)


def reliability(data: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """The reliability diagram: observed against predicted rate per risk bin, sized by count."""
    bins = [b for b in data.get("reliability") or [] if b.get("count")]
    figure = Figure(figsize=(4.4, 3.7), layout="constrained")
    ax = figure.add_subplot()
    predicted = [_number(b["predicted"]) for b in bins]
    observed = [_number(b["observed"]) for b in bins]
    top = max([0.2, *[v * 1.15 for v in predicted + observed if not math.isnan(v)]])
    top = min(1.0, top)
    ax.plot([0, top], [0, top], linestyle="--", color=GREY, label="Perfectly calibrated")
    if bins:
        largest = max(b["count"] for b in bins)
        sizes = [30 + 220 * b["count"] / largest for b in bins]
        ax.plot(predicted, observed, color=BLUE, linewidth=1.5)
        ax.scatter(predicted, observed, s=sizes, color=BLUE, zorder=3, label="Observed (size: n)")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("Predicted 30-day readmission risk")
    ax.set_ylabel("Observed readmission rate")
    _style(ax)
    ax.legend(loc="upper left", frameon=False)
    return _svg(figure)


def over_time(data: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """AUROC, ECE and calibration slope by month, each beside its reference."""
    months = _months(data)
    labels = [str(m.get("month")) for m in months]
    x = list(range(len(months)))
    figure = Figure(figsize=(4.4, 4.4), layout="constrained")
    axes = figure.subplots(3, 1, sharex=True)
    panels = [
        ("auroc", "AUROC", BLUE, "o", _number(reference.get("auroc")), "test set"),
        ("ece", "ECE", ORANGE, "s", _number(reference.get("ece")), "test set"),
        ("calibration_slope", "Calibration slope", GREEN, "^", 1.0, "ideal"),
    ]
    for ax, (key, name, colour, marker, line, line_label) in zip(axes, panels, strict=True):
        values = [_number(m.get(key)) for m in months]
        ax.plot(x, values, color=colour, marker=marker, linewidth=1.5, label=name)
        if not math.isnan(line):
            ax.axhline(
                line, color=GREY, linestyle="--", linewidth=1, label=f"{line_label} {line:.3g}"
            )
        ax.set_ylabel(name)
        _style(ax)
        ax.legend(loc="best", frameon=False)
    _month_ticks(axes[-1], labels)
    axes[-1].set_xlabel("Month of discharge")
    if not months:
        axes[0].text(0.5, 0.5, "no months yet", transform=axes[0].transAxes, ha="center")
    return _svg(figure)


def flags(data: Mapping[str, Any], reference: Mapping[str, Any]) -> str:
    """The flag rate and the share of flagged cases readmitted, by month, beside the window's
    readmission rate."""
    months = _months(data)
    x = list(range(len(months)))
    figure = Figure(figsize=(4.4, 3.9), layout="constrained")
    ax = figure.add_subplot()
    lines = [
        ("flag_rate", "Flagged", BLUE, "o", "-"),
        ("flagged_readmitted_rate", "Flagged, readmitted", ORANGE, "s", "-"),
        ("flagged_readmitted_share", "Readmissions flagged", GREEN, "^", ":"),
    ]
    for key, label, colour, marker, style in lines:
        values = [_number(m.get(key)) for m in months]
        ax.plot(x, values, color=colour, marker=marker, linestyle=style, linewidth=1.5, label=label)
    observed = _number(_rate((data.get("cohorts") or {}).get("all") or {}))
    if not math.isnan(observed):
        ax.axhline(observed, color=GREY, linestyle="--", linewidth=1, label="All readmitted")
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    _month_ticks(ax, [str(m.get("month")) for m in months])
    ax.set_xlabel("Month of discharge")
    _style(ax)
    figure.legend(loc="outside lower center", ncols=2, frameon=False, fontsize="small")
    return _svg(figure)


DRAW: Final[dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]]] = {
    "reliability": reliability,
    "over-time": over_time,
    "flags": flags,
}


class ChartCache:
    """Charts of the latest snapshot, drawn once each; a newer `computed_at` starts afresh."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._computed_at: object = None
        self._charts: dict[tuple[str, str, str], str] = {}

    def svg(self, snapshot: Mapping[str, Any], version: str, window: str, name: str) -> str:
        """The SVG of chart `name` for `version` and `window` (blocking: call it off the loop)."""
        model = snapshot["model_versions"][version]
        key = (version, window, name)
        # NOTE: one lock for drawing too: matplotlib's font cache is shared between threads.
        with self._lock:
            if snapshot.get("computed_at") != self._computed_at:
                self._computed_at, self._charts = snapshot.get("computed_at"), {}
            if key not in self._charts:
                draw = DRAW[name]
                self._charts[key] = draw(model["windows"][window], model.get("reference") or {})
            return self._charts[key]
