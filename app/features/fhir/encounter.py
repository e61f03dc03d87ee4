"""Patient and Encounter features: demographics, the coded ids, the stay and prior visits."""

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from app.features.columns import AGE_BUCKETS, CODED_COLUMNS
from app.features.fhir import codes
from app.features.fhir.model import FhirMappingError, Source, ref
from app.features.fhir.reading import code_in, codings, parse_date
from app.features.fhir.schema import CodeableConcept, Encounter, Extension, Patient

Feature = tuple[Any, Source]
MAX_STAY_DAYS = 14  # the published data's longest stay
PRIOR_WINDOW = timedelta(days=365)


def admission_date(encounter: Encounter) -> date:
    """Encounter.period.start as a date; every date rule counts from it."""
    start = encounter.period.start if encounter.period is not None else None
    if not start:
        raise FhirMappingError(f"{ref(encounter)}: needs period.start (the admission time)")
    return parse_date(start, ref(encounter, "period.start"))


def age(patient: Patient, at: date) -> Feature:
    """The 10-year band of the age at admission, from Patient.birthDate."""
    where = ref(patient, "birthDate")
    text = patient.birthDate
    if not text:
        return None, Source(None, f"{where} absent")
    first = parse_date(text, where)
    last = _last_day(text, first)
    bands = {_band(_years(day, at)) for day in (first, last)}
    band = bands.pop() if len(bands) == 1 else None
    if band is None:
        return None, Source(None, f"{where} {text!r} gives no single band from 0 to 100 years")
    return band, Source(where)


def gender(patient: Patient) -> Feature:
    """Male, Female or Unknown/Invalid from Patient.gender."""
    value = patient.gender
    if value is None:
        return None, Source(None, f"{ref(patient, 'gender')} absent")
    return codes.GENDERS.get(value, codes.GENDERS_UNKNOWN), Source(ref(patient, "gender"))


def race(patient: Patient) -> Feature:
    """The published race from the US Core ethnicity (Hispanic) and race extensions."""
    found = {e.url: e for e in patient.extension}
    ethnicity = _omb_codes(found.get(codes.US_CORE_ETHNICITY))
    if codes.HISPANIC in ethnicity:
        return "Hispanic", Source(ref(patient, "extension:us-core-ethnicity"))
    where = ref(patient, "extension:us-core-race")
    extension = found.get(codes.US_CORE_RACE)
    if extension is None:
        return None, Source(None, f"{where} absent")
    categories = _omb_codes(extension) - codes.RACE_NULL_FLAVOURS
    if not categories:
        return None, Source(None, f"{where} has no race category (unknown or declined)")
    if len(categories) == 1:
        return codes.RACES.get(categories.pop(), "Other"), Source(where)
    return "Other", Source(where, "more than one race category")


def patient_nbr(patient: Patient) -> Feature:
    """The data set's patient number, from a Patient.identifier in its own system."""
    for identifier in patient.identifier:
        if identifier.system == codes.PATIENT_NBR_SYSTEM:
            value = identifier.value or ""
            if not value.isdigit():
                raise FhirMappingError(f"{ref(patient, 'identifier')}: {value!r} is not a number")
            return int(value), Source(ref(patient, "identifier"))
    return None, Source(
        None, f"{ref(patient, 'identifier')} has none in {codes.PATIENT_NBR_SYSTEM}"
    )


def coded_ids(encounter: Encounter) -> dict[str, Feature]:
    """admission_type_id, discharge_disposition_id and admission_source_id."""
    stay = encounter.hospitalization
    places = {
        "admission_type_id": (
            "priority",
            encounter.priority,
            codes.ADMISSION_TYPE_SYSTEM,
            codes.PRIORITY_SYSTEM,
            codes.PRIORITY_TO_ADMISSION_TYPE,
        ),
        "discharge_disposition_id": (
            "hospitalization.dischargeDisposition",
            stay.dischargeDisposition if stay is not None else None,
            codes.DISCHARGE_SYSTEM,
            codes.DISPOSITION_SYSTEM,
            codes.DISPOSITION_TO_ID,
        ),
        "admission_source_id": (
            "hospitalization.admitSource",
            stay.admitSource if stay is not None else None,
            codes.ADMISSION_SOURCE_SYSTEM,
            codes.ADMIT_SOURCE_SYSTEM,
            codes.ADMIT_SOURCE_TO_ID,
        ),
    }
    assert set(places) == set(CODED_COLUMNS)
    return {
        column: _coded(ref(encounter, element), concept, own, standard, table)
        for column, (element, concept, own, standard, table) in places.items()
    }


def discharge_date(encounter: Encounter) -> date | None:
    """Encounter.period.end as a date; None when not discharged yet."""
    end = _end(encounter)
    return parse_date(end, ref(encounter, "period.end")) if end else None


def time_in_hospital(encounter: Encounter, start: date) -> Feature:
    """Calendar days from admission to discharge (a same-day stay counts as 1)."""
    where = ref(encounter, "period.end")
    end = _end(encounter)
    if not end:
        return None, Source(None, f"{where} absent (not discharged yet)")
    days = (parse_date(end, where) - start).days
    if days < 0:
        raise FhirMappingError(f"{ref(encounter, 'period')}: end is before start")
    if days > MAX_STAY_DAYS:
        return days, Source(ref(encounter, "period"), "longer than any stay in the training data")
    return max(days, 1), Source(ref(encounter, "period"))


def medical_specialty(encounter: Encounter) -> Feature:
    """The admitting physician's specialty, from Encounter.serviceType in the data set's system."""
    where = ref(encounter, "serviceType")
    value = code_in(encounter.serviceType, codes.SPECIALTY_SYSTEM)
    if value is None:
        return None, Source(None, f"{where} has no coding in {codes.SPECIALTY_SYSTEM}")
    return value, Source(where)


def payer_code(encounter: Encounter) -> Feature:
    """The payer, from the payer-code extension on the Encounter."""
    where = ref(encounter, "extension:payer-code")
    for extension in encounter.extension:
        coding = extension.valueCoding
        if (
            extension.url == codes.PAYER_EXTENSION
            and coding is not None
            and coding.system == codes.PAYER_SYSTEM
            and coding.code
        ):
            return coding.code, Source(where)
    return None, Source(None, f"{where} absent")


def prior_visits(
    prior: Sequence[Encounter] | None, encounter: Encounter, start: date
) -> dict[str, Feature]:
    """Outpatient, emergency and inpatient visits that began in the year before admission."""
    columns = ("number_outpatient", "number_emergency", "number_inpatient")
    if prior is None:
        return {c: (None, Source(None, "prior encounters not provided")) for c in columns}
    counts = dict.fromkeys(columns, 0)
    for visit in prior:
        if visit.id == encounter.id or visit.status == "entered-in-error":
            continue
        column = codes.VISIT_CLASSES.get(str(visit.class_.code if visit.class_ else None))
        if column is not None and start - PRIOR_WINDOW <= admission_date(visit) < start:
            counts[column] += 1
    note = "Encounter.class AMB / EMER / IMP, period.start in the year before admission"
    return {c: (n, Source("priorEncounters", note)) for c, n in counts.items()}


def _coded(
    where: str,
    concept: CodeableConcept | None,
    own: str,
    standard: str,
    table: Mapping[str, int],
) -> Feature:
    value = code_in(concept, own)
    if value is not None:
        if not value.isdigit():
            raise FhirMappingError(f"{where}: code {value!r} in {own} is not a published id")
        return int(value), Source(where)
    value = code_in(concept, standard)
    if value is not None and value in table:
        return table[value], Source(where, f"{standard}|{value}")
    if value is not None:
        return None, Source(None, f"{where}: {standard}|{value} has no published id")
    systems = sorted({str(c.system) for c in codings(concept)})
    return None, Source(None, f"{where} absent" + (f" (only {systems})" if systems else ""))


def _omb_codes(extension: Extension | None) -> set[str]:
    """The OMB category codes of a race or ethnicity extension; a detailed code alone is Other."""
    parts = extension.extension if extension is not None else []
    omb = {_code(p) for p in parts if p.url == "ombCategory"}
    if omb or not any(p.url == "detailed" for p in parts):
        return omb
    return {codes.OTHER_RACE}


def _code(part: Extension) -> str:
    return str(part.valueCoding.code if part.valueCoding is not None else None)


def _end(encounter: Encounter) -> str | None:
    return encounter.period.end if encounter.period is not None else None


def _years(birth: date, at: date) -> int:
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def _band(years: int) -> str | None:
    return AGE_BUCKETS[years // 10] if 0 <= years < 10 * len(AGE_BUCKETS) else None


def _last_day(text: str, first: date) -> date:
    """The last day a partial date can mean (the date itself when complete)."""
    if len(text) == 4:
        return date(first.year, 12, 31)
    if len(text) == 7:
        following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return following - timedelta(days=1)
    return first
