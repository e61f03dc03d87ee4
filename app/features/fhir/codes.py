"""Code systems and code tables that connect FHIR R4 codings to the published columns."""

from typing import Final

# The data set's own code systems: a coding in one of these carries the published value as is.
DATASET_SYSTEM: Final = "urn:triage:diabetes130:"
ADMISSION_TYPE_SYSTEM: Final = DATASET_SYSTEM + "admission_type_id"
ADMISSION_SOURCE_SYSTEM: Final = DATASET_SYSTEM + "admission_source_id"
DISCHARGE_SYSTEM: Final = DATASET_SYSTEM + "discharge_disposition_id"
SPECIALTY_SYSTEM: Final = DATASET_SYSTEM + "medical_specialty"
PAYER_SYSTEM: Final = DATASET_SYSTEM + "payer_code"
PATIENT_NBR_SYSTEM: Final = DATASET_SYSTEM + "patient_nbr"
MEDICATION_SYSTEM: Final = DATASET_SYSTEM + "medication"
PAYER_EXTENSION: Final = "https://triage.example/fhir/StructureDefinition/payer-code"

ICD9_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-9-cm"
ICD10_SYSTEM: Final = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC_SYSTEM: Final = "http://loinc.org"
RXNORM_SYSTEM: Final = "http://www.nlm.nih.gov/research/umls/rxnorm"
UCUM_SYSTEM: Final = "http://unitsofmeasure.org"
PRIORITY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ADMIT_SOURCE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/admit-source"
DISPOSITION_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/discharge-disposition"
ENCOUNTER_CLASS_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
OBSERVATION_CATEGORY_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/observation-category"
DIAGNOSIS_ROLE_SYSTEM: Final = "http://terminology.hl7.org/CodeSystem/diagnosis-role"
US_CORE_RACE: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_CORE_ETHNICITY: Final = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
CDC_RACE_SYSTEM: Final = "urn:oid:2.16.840.1.113883.6.238"

GENDERS: Final = {"male": "Male", "female": "Female", "other": "Unknown/Invalid"}
GENDERS_UNKNOWN: Final = "Unknown/Invalid"  # FHIR "unknown" and "other"
RACES: Final = {"2106-3": "Caucasian", "2054-5": "AfricanAmerican", "2028-9": "Asian"}
HISPANIC: Final = "2135-2"
OTHER_RACE: Final = "2131-1"
RACE_NULL_FLAVOURS: Final = frozenset({"UNK", "ASKU"})

# Standard HL7 codes with a clean counterpart among the published ids.
PRIORITY_TO_ADMISSION_TYPE: Final = {"EM": 1, "UR": 2, "EL": 3}
ADMIT_SOURCE_TO_ID: Final = {
    "mp": 1,
    "gp": 1,
    "outp": 2,
    "hosp-trans": 4,
    "nursing": 5,
    "psych": 6,
    "rehab": 6,
    "emd": 7,
    "born": 23,
}
DISPOSITION_TO_ID: Final = {
    "home": 1,
    "snf": 3,
    "aadvice": 7,
    "exp": 11,
    "hosp": 14,
    "rehab": 22,
    "long": 23,
    "psy": 28,
    "other-hcf": 30,
}
# The published id -> the one standard code that maps back to it (for building examples).
ADMISSION_TYPE_TO_PRIORITY: Final = {v: k for k, v in PRIORITY_TO_ADMISSION_TYPE.items()}
ID_TO_ADMIT_SOURCE: Final = {
    1: "mp",
    2: "outp",
    4: "hosp-trans",
    5: "nursing",
    7: "emd",
    23: "born",
}
ID_TO_DISPOSITION: Final = {v: k for k, v in DISPOSITION_TO_ID.items()}

# Encounter.class codes counted as prior visits.
VISIT_CLASSES: Final = {
    "AMB": "number_outpatient",
    "EMER": "number_emergency",
    "IMP": "number_inpatient",
    "ACUTE": "number_inpatient",
    "NONAC": "number_inpatient",
}

A1C_LOINC: Final = frozenset({"4548-4", "17856-6"})
A1C_IFCC_LOINC: Final = "59261-8"  # the IFCC-reported HbA1c (mmol/mol)
GLUCOSE_LOINC: Final = frozenset({"2345-7", "2339-0"})
WEIGHT_LOINC: Final = "29463-7"
# UCUM unit -> (scale, offset) into the unit the bands use: value * scale + offset.
A1C_UNITS: Final = {"%": (1.0, 0.0), "mmol/mol": (0.09148, 2.152)}  # IFCC -> NGSP master equation
GLUCOSE_UNITS: Final = {"mg/dL": (1.0, 0.0), "mmol/L": (18.016, 0.0)}
LB_PER_KG: Final = 2.20462262
WEIGHT_UNITS: Final = {
    "[lb_av]": (1.0, 0.0),
    "lb": (1.0, 0.0),
    "kg": (LB_PER_KG, 0.0),
    "g": (LB_PER_KG / 1000, 0.0),
}

# Ingredient RxCUIs of the single-ingredient medication columns.
RXNORM_INGREDIENTS: Final = {
    "6809": "metformin",
    "73044": "repaglinide",
    "274332": "nateglinide",
    "2404": "chlorpropamide",
    "25789": "glimepiride",
    "173": "acetohexamide",
    "4821": "glipizide",
    "4815": "glyburide",
    "10633": "tolbutamide",
    "33738": "pioglitazone",
    "84108": "rosiglitazone",
    "16681": "acarbose",
    "30009": "miglitol",
    "72610": "troglitazone",
    "10635": "tolazamide",
    "5856": "insulin",
    "274783": "insulin",  # insulin glargine
    "86009": "insulin",  # insulin lispro
    "51428": "insulin",  # insulin aspart
    "139825": "insulin",  # insulin detemir
}
INGREDIENT_RXCUI: Final = {
    name: code for code, name in reversed(list(RXNORM_INGREDIENTS.items()))
}  # the generic ingredient code of each column (insulin -> 5856)
# Combination columns: the set of ingredient columns they hold.
COMBINATIONS: Final = {
    frozenset({"glyburide", "metformin"}): "glyburide-metformin",
    frozenset({"glipizide", "metformin"}): "glipizide-metformin",
    frozenset({"glimepiride", "pioglitazone"}): "glimepiride-pioglitazone",
    frozenset({"metformin", "rosiglitazone"}): "metformin-rosiglitazone",
    frozenset({"metformin", "pioglitazone"}): "metformin-pioglitazone",
}
