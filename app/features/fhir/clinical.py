"""Condition, Observation and Procedure features: diagnoses, labs, weight and procedure counts."""

from collections.abc import Mapping, Sequence

from app.features.fhir import codes
from app.features.fhir.encounter import Feature
from app.features.fhir.icd10 import icd9_for_icd10
from app.features.fhir.model import FhirMappingError, Source, ref
from app.features.fhir.reading import (
    code_in,
    codings,
    has_code,
    live,
    quantity,
    reference_id,
)
from app.features.fhir.schema import Condition, Encounter, Observation, Procedure
from app.features.icd9 import is_valid_icd9

A1C_BANDS = ((8.0, ">8"), (7.0, ">7"))
GLUCOSE_BANDS = ((300.0, ">300"), (200.0, ">200"))
WEIGHT_BANDS = tuple((hi, f"[{hi - 25}-{hi})") for hi in range(25, 201, 25))
_LABORATORY = frozenset({"laboratory"})
# The results read from Observations, by LOINC code.
_RESULT_KINDS: dict[str | None, str] = {
    **dict.fromkeys([*codes.A1C_LOINC, codes.A1C_IFCC_LOINC], "a1c"),
    **dict.fromkeys(codes.GLUCOSE_LOINC, "glucose"),
    codes.WEIGHT_LOINC: "weight",
}


def diagnoses(encounter: Encounter, conditions: Sequence[Condition] | None) -> dict[str, Feature]:
    """diag_1..3 (ICD-9-CM, published format) and number_diagnoses, in diagnosis rank order."""
    listed = _encounter_conditions(encounter, conditions)
    if listed is None:
        note = "conditions not provided and Encounter.diagnosis absent"
        return {
            c: (None, Source(None, note))
            for c in ("diag_1", "diag_2", "diag_3", "number_diagnoses")
        }
    out: dict[str, Feature] = {}
    for k in range(3):
        column = f"diag_{k + 1}"
        if k >= len(listed):
            out[column] = None, Source(None, f"fewer than {k + 1} diagnoses")
        else:
            out[column] = icd9_of(listed[k])
    out["number_diagnoses"] = len(listed), Source(ref(encounter, "diagnosis"), "count")
    return out


def icd9_of(condition: Condition) -> Feature:
    """A Condition's ICD-9-CM code in the published format (ICD-10-CM mapped to its group)."""
    where = ref(condition, "code")
    concept = condition.code
    icd9 = code_in(concept, codes.ICD9_SYSTEM)
    if icd9 is not None:
        published = _published_icd9(icd9)
        if not is_valid_icd9(published):
            raise FhirMappingError(f"{where}: {icd9!r} is not an ICD-9-CM code")
        return published, Source(where, codes.ICD9_SYSTEM)
    icd10 = code_in(concept, codes.ICD10_SYSTEM)
    if icd10 is not None:
        mapped = icd9_for_icd10(icd10)
        if mapped is None:
            raise FhirMappingError(
                f"{where}: ICD-10-CM {icd10!r} has no diagnosis group; send an ICD-9-CM coding"
            )
        return mapped, Source(where, f"ICD-10-CM {icd10} -> group of ICD-9-CM {mapped}")
    if not codings(concept):
        return None, Source(None, f"{where} has no coding")
    systems = sorted({str(c.system) for c in codings(concept)})
    raise FhirMappingError(
        f"{where}: no coding in {codes.ICD9_SYSTEM} or {codes.ICD10_SYSTEM} (found {systems});"
        " add an ICD-9-CM or ICD-10-CM coding"
    )


def procedures(items: Sequence[Procedure] | None) -> Feature:
    """num_procedures: the Procedures performed in the encounter."""
    if items is None:
        return None, Source(None, "procedures not provided")
    return len(live(items)), Source("procedures", "count, entered-in-error and not-done left out")


def observations(items: Sequence[Observation] | None) -> dict[str, Feature]:
    """num_lab_procedures, A1Cresult, max_glu_serum and weight from the Observations."""
    columns = ("num_lab_procedures", "A1Cresult", "max_glu_serum", "weight")
    if items is None:
        return {c: (None, Source(None, "observations not provided")) for c in columns}
    # NOTE: one pass reads each Observation's category and LOINC code (a prefetch carries
    # dozens); the results are then converted kind by kind, so errors come in the same order.
    labs = 0
    by_kind: dict[str, list[Observation]] = {"a1c": [], "glucose": [], "weight": []}
    for o in live(items):
        labs += has_code(o.category, codes.OBSERVATION_CATEGORY_SYSTEM, _LABORATORY)
        kind = _RESULT_KINDS.get(code_in(o.code, codes.LOINC_SYSTEM))
        if kind is not None:
            by_kind[kind].append(o)
    a1c = [_converted(o, codes.A1C_UNITS) for o in by_kind["a1c"]]
    glucose = [_converted(o, codes.GLUCOSE_UNITS) for o in by_kind["glucose"]]
    weights = [_converted(o, codes.WEIGHT_UNITS) for o in by_kind["weight"]]
    return {
        "num_lab_procedures": (labs, Source("observations", "count of category laboratory")),
        "A1Cresult": _banded(a1c, A1C_BANDS, "HbA1c (LOINC 4548-4, 17856-6, 59261-8)"),
        "max_glu_serum": _banded(glucose, GLUCOSE_BANDS, "glucose (LOINC 2345-7, 2339-0)"),
        "weight": _weight(weights),
    }


def _encounter_conditions(
    encounter: Encounter, conditions: Sequence[Condition] | None
) -> list[Condition] | None:
    """The encounter's diagnoses: Encounter.diagnosis by rank, else Conditions in list order."""
    by_id = {str(c.id): c for c in conditions or []}
    entries = encounter.diagnosis
    if entries:
        ranked = sorted(
            enumerate(entries),
            key=lambda e: (e[1].rank is None, e[1].rank or 0, e[0]),
        )
        out = []
        for k, entry in ranked:
            key = reference_id(entry.condition)
            if key not in by_id:
                raise FhirMappingError(
                    f"{ref(encounter, f'diagnosis[{k}]')}: refers to Condition/{key}, which is not"
                    " in the conditions; add it to the conditions prefetch"
                )
            out.append(by_id[key])
        return out
    if conditions is None:
        return None
    own = encounter.id
    return [c for c in live(conditions) if reference_id(c.encounter) in (None, own)]


def _published_icd9(code: str) -> str:
    """ICD-9-CM in the published format: numeric codes lose their leading zeros (008 -> 8)."""
    head, dot, tail = code.strip().upper().partition(".")
    if head.isdigit():
        head = head.lstrip("0") or "0"
    return head + dot + tail


def _converted(observation: Observation, units: Mapping[str, tuple[float, float]]) -> float:
    """An Observation's value in the unit its bands use; error for a unit not in `units`."""
    value, unit = quantity(observation, "valueQuantity")
    if unit not in units:
        wanted = ", ".join(units)
        raise FhirMappingError(
            f"{ref(observation, 'valueQuantity')}: unit {unit!r} is not one of {wanted} (UCUM)"
        )
    scale, offset = units[unit]
    return value * scale + offset


def _banded(values: list[float], bands: tuple[tuple[float, str], ...], what: str) -> Feature:
    """The band of the highest result ("None" = not measured, "Norm" = under every cut)."""
    if not values:
        return "None", Source("observations", f"no {what} result: not measured")
    top = max(values)
    label = next((name for cut, name in bands if top > cut), "Norm")
    return label, Source("observations", f"highest {what} result {top:.4g}")


def _weight(values: list[float]) -> Feature:
    """The pound band of the last body weight (LOINC 29463-7)."""
    if not values:
        return None, Source(None, "no body weight Observation (LOINC 29463-7)")
    pounds = values[-1]
    band = next((name for hi, name in WEIGHT_BANDS if pounds < hi), ">200")
    return band, Source("observations", f"body weight {pounds:.4g} lb")
