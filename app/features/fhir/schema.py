"""The FHIR R4 elements the mapping reads, as msgspec Structs: a prefetch decodes straight into
these, and everything else in it is skipped unread.

A hook body is about 30 kB of FHIR (dozens of Observations); decoding all of it into dicts cost
more than a whole `POST /predict` (docs/cds-hooks.md#throughput). Every element is optional, so
any well-formed FHIR decodes; an element of the wrong JSON type is a `msgspec.ValidationError`,
which `app.features.fhir.mapping.as_prefetch` turns into a message naming what to fix.
`gc=False`: these hold only strings, numbers, lists and other such Structs, never a cycle, so
the collector need not walk the thousands of them a busy worker holds.
"""

from typing import Generic, TypeVar

from msgspec import Struct, field


class Element(Struct, gc=False):
    """A FHIR data type (no Struct of this module is tracked by the collector)."""


class Coding(Element):
    system: str | None = None
    code: str | None = None


class CodeableConcept(Element):
    coding: list[Coding] = []
    text: str | None = None


class Reference(Element):
    reference: str | None = None


class Period(Element):
    start: str | None = None
    end: str | None = None


class Quantity(Element):
    value: float | None = None
    unit: str | None = None
    code: str | None = None


class Identifier(Element):
    system: str | None = None
    value: str | None = None


class Extension(Element):
    """An extension, complex ones (US Core race and ethnicity) with their parts."""

    url: str | None = None
    valueCoding: Coding | None = None
    extension: list["Extension"] = []


class Resource(Element):
    """What the mapping reads of every resource: its type, id and (where it has one) status."""

    resourceType: str | None = None
    id: str | None = None
    status: str | None = None


class Patient(Resource):
    birthDate: str | None = None
    gender: str | None = None
    identifier: list[Identifier] = []
    extension: list[Extension] = []


class Diagnosis(Element):
    condition: Reference | None = None
    rank: int | None = None


class Hospitalization(Element):
    admitSource: CodeableConcept | None = None
    dischargeDisposition: CodeableConcept | None = None


class Encounter(Resource):
    class_: Coding | None = field(default=None, name="class")
    period: Period | None = None
    priority: CodeableConcept | None = None
    hospitalization: Hospitalization | None = None
    serviceType: CodeableConcept | None = None
    extension: list[Extension] = []
    diagnosis: list[Diagnosis] = []


class Condition(Resource):
    code: CodeableConcept | None = None
    encounter: Reference | None = None


class Observation(Resource):
    category: list[CodeableConcept] = []
    code: CodeableConcept | None = None
    valueQuantity: Quantity | None = None


class Procedure(Resource):
    pass


class Ingredient(Element):
    itemCodeableConcept: CodeableConcept | None = None


class Contained(Resource):
    """A contained resource; the mapping reads Medications (code and ingredients)."""

    code: CodeableConcept | None = None
    ingredient: list[Ingredient] = []


class DoseAndRate(Element):
    doseQuantity: Quantity | None = None


class Dosage(Element):
    doseAndRate: list[DoseAndRate] = []


class MedicationRequest(Resource):
    medicationCodeableConcept: CodeableConcept | None = None
    medicationReference: Reference | None = None
    contained: list[Contained] = []
    authoredOn: str | None = None
    priorPrescription: Reference | None = None
    dosageInstruction: list[Dosage] = []


R = TypeVar("R", bound=Resource)


class Entry(Element, Generic[R]):
    resource: R | None = None


class Bundle(Element, Generic[R]):
    """A searchset Bundle (another resource sent in its place is named by its resourceType)."""

    resourceType: str | None = None
    entry: list[Entry[R]] = []

    def resources(self) -> list[R]:
        return [e.resource for e in self.entry if e.resource is not None]


class Prefetch(Element, forbid_unknown_fields=True):
    """A CDS Hooks prefetch: the keys of the discovery document's templates (None = not sent)."""

    patient: Patient | None = None
    encounter: Encounter | None = None
    conditions: Bundle[Condition] | None = None
    observations: Bundle[Observation] | None = None
    medicationRequests: Bundle[MedicationRequest] | None = None
    procedures: Bundle[Procedure] | None = None
    priorEncounters: Bundle[Encounter] | None = None
