"""Turn the performance job's snapshot into what the model health page shows, in plain words."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from app.web.present import age_band, percent
from app.web.words import ADMISSION_TYPE_WORDS

TOO_FEW: Final = "too few outcomes"
WINDOW_WORDS: Final = {"30d": "Last 30 days", "90d": "Last 90 days", "365d": "Last 365 days"}
_GROUPS: Final = {
    "age": "Age",
    "gender": "Sex",
    "race": "Race",
    "admission_type": "Admission type",
}
_RACE_WORDS: Final = {"AfricanAmerican": "African American", "?": "Not recorded"}


@dataclass(frozen=True)
class CohortRow:
    """One line of the subgroup table; None figures read as 'too few outcomes'."""

    key: str
    group: str
    label: str
    n: int
    events: int
    auroc: str | None
    brier: str | None
    ece: str | None
    observed: str | None
    predicted: str | None


@dataclass(frozen=True)
class Headline:
    """A figure of cohort 'all' beside its test-set reference."""

    label: str
    value: str
    reference: str | None


@dataclass(frozen=True)
class Clinicians:
    """Model against clinicians on resolved cases with a known outcome."""

    n: int
    brier_model: str | None
    brier_clinician: str | None
    agreement: str | None


@dataclass(frozen=True)
class HealthView:
    """The page for one model version and one window."""

    version: str
    window: str
    window_label: str
    period: str
    computed_at: str
    backlog: int
    outcomes: int
    headlines: list[Headline]
    rows: list[CohortRow]
    months: list[dict[str, Any]]
    clinicians: Clinicians | None


def fixed(value: Any, digits: int = 3) -> str | None:
    """0.71234 -> '0.712'; None (or a non-number) stays None."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return f"{value:.{digits}f}"


def share(value: Any) -> str | None:
    """0.2345 -> '23.5%'; None stays None."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    return percent(value)


def interval(metrics: Mapping[str, Any]) -> str | None:
    """'0.712 (0.650–0.770)', the AUROC with its bootstrap interval when there is one."""
    auroc = fixed(metrics.get("auroc"))
    if auroc is None:
        return None
    ci = metrics.get("auroc_ci") or [None, None]
    low, high = fixed(ci[0]), fixed(ci[1])
    return f"{auroc} ({low}–{high})" if low and high else auroc


def cohort_label(key: str) -> tuple[str, str]:
    """'age:[70-80)' -> ('Age', '70–79 years'); 'flagged' -> ('Flag', 'Flagged for review')."""
    fixed_names = {
        "all": "All outcomes",
        "flagged": "Flagged for review",
        "unflagged": "Not flagged",
    }
    if key in fixed_names:
        return "Flag", fixed_names[key]
    group, _, value = key.partition(":")
    if group == "age":
        return _GROUPS[group], age_band(value)
    if group == "admission_type":
        words = ADMISSION_TYPE_WORDS.get(value)
        return _GROUPS[group], f"{words} (type {value})" if words else f"Type {value}"
    if group == "race":
        return _GROUPS[group], _RACE_WORDS.get(value, value)
    return _GROUPS.get(group, group.replace("_", " ").capitalize()), value or key


def cohort_rows(cohorts: Mapping[str, Mapping[str, Any]]) -> list[CohortRow]:
    """The subgroup table, grouped (flag, age, sex, race, admission type) and ordered."""
    order = ["Flag", *_GROUPS.values()]
    rows = []
    for key, m in cohorts.items():
        group, label = cohort_label(key)
        rows.append(
            CohortRow(
                key=key,
                group=group,
                label=label,
                n=int(m.get("n") or 0),
                events=int(m.get("events") or 0),
                auroc=interval(m),
                brier=fixed(m.get("brier")),
                ece=fixed(m.get("ece")),
                observed=share(m.get("observed_rate")),
                predicted=share(m.get("predicted_rate")),
            )
        )
    rank = {g: i for i, g in enumerate(order)}
    return sorted(rows, key=lambda r: (rank.get(r.group, len(order)), r.group, _sort_key(r.key)))


def _sort_key(key: str) -> tuple[int, str]:
    fixed_order = {"all": 0, "flagged": 1, "unflagged": 2}
    if key in fixed_order:
        return fixed_order[key], ""
    value = key.partition(":")[2]
    digits = "".join(c for c in value.split("-")[0] if c.isdigit())
    return (int(digits) if digits else 10_000), value


def outcome_count(window: Mapping[str, Any]) -> int:
    """Matured outcomes in a window (cohort 'all')."""
    return int(((window.get("cohorts") or {}).get("all") or {}).get("n") or 0)


def health_view(snapshot: Mapping[str, Any], version: str, window: str) -> HealthView:
    """The page's figures for `version` and `window` of a snapshot that has both."""
    model = snapshot["model_versions"][version]
    data = model["windows"][window]
    everyone = (data.get("cohorts") or {}).get("all") or {}
    reference = model.get("reference") or {}
    headlines = [
        Headline("AUROC", interval(everyone) or TOO_FEW, fixed(reference.get("auroc"))),
        Headline(
            "Brier score", fixed(everyone.get("brier")) or TOO_FEW, fixed(reference.get("brier"))
        ),
        Headline("ECE", fixed(everyone.get("ece")) or TOO_FEW, fixed(reference.get("ece"))),
        Headline(
            "Observed vs predicted rate",
            f"{share(everyone.get('observed_rate')) or '–'} vs "
            f"{share(everyone.get('predicted_rate')) or '–'}",
            None,
        ),
    ]
    block = data.get("clinicians")
    clinicians = None
    if isinstance(block, Mapping):
        clinicians = Clinicians(
            n=int(block.get("n") or 0),
            brier_model=fixed(block.get("brier_model")),
            brier_clinician=fixed(block.get("brier_clinician")),
            agreement=share(block.get("agreement")),
        )
    return HealthView(
        version=version,
        window=window,
        window_label=WINDOW_WORDS.get(window, window),
        period=f"{data.get('from', '?')} to {data.get('to', '?')} (by discharge date)",
        computed_at=_when(snapshot.get("computed_at")),
        backlog=int(model.get("backlog") or 0),
        outcomes=outcome_count(data),
        headlines=headlines,
        rows=cohort_rows(data.get("cohorts") or {}),
        months=[
            {
                "month": m.get("month"),
                "n": m.get("n"),
                "auroc": fixed(m.get("auroc")) or TOO_FEW,
                "ece": fixed(m.get("ece")) or TOO_FEW,
                "slope": fixed(m.get("calibration_slope"), 2) or TOO_FEW,
                "flag_rate": share(m.get("flag_rate")) or "–",
                "flagged_readmitted": share(m.get("flagged_readmitted_share")) or "–",
            }
            for m in data.get("over_time") or []
        ],
        clinicians=clinicians,
    )


def _when(value: Any) -> str:
    try:
        return datetime.fromisoformat(str(value)).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(value)
