"""The review page's vocabulary: what each stored code, status and outcome reads as."""

from typing import Final

NOT_RECORDED: Final = "Not recorded"

CHAPTER_NAMES: Final = {
    "diabetes": "Diabetes mellitus",
    "infectious": "Infectious and parasitic diseases",
    "neoplasms": "Neoplasms",
    "endocrine_metabolic": "Endocrine, nutritional and metabolic (not diabetes)",
    "blood": "Blood and blood-forming organs",
    "mental": "Mental disorders",
    "nervous_sense": "Nervous system and sense organs",
    "circulatory": "Circulatory system",
    "respiratory": "Respiratory system",
    "digestive": "Digestive system",
    "genitourinary": "Genitourinary system",
    "pregnancy": "Pregnancy and childbirth",
    "skin": "Skin and subcutaneous tissue",
    "musculoskeletal": "Musculoskeletal and connective tissue",
    "congenital": "Congenital anomalies",
    "perinatal": "Perinatal conditions",
    "symptoms_ill_defined": "Symptoms and ill-defined conditions",
    "injury_poisoning": "Injury and poisoning",
    "supplementary_v": "Supplementary factors (V codes)",
    "external_e": "External causes of injury (E codes)",
}

A1C_WORDS: Final = {
    ">8": "Above 8%",
    ">7": "7–8%",
    "Norm": "Normal (below 7%)",
    "None": "Not measured",
}

STATUS_WORDS: Final = {
    "pending": "Pending",
    "in_review": "In review",
    "resolved": "Resolved",
    "superseded": "Superseded",
}
OUTCOME_WORDS: Final = {
    "agree": "Agree with the model",
    "override": "Override the model",
    "needs_follow_up": "Needs follow-up",
}
REASON_WORDS: Final = {
    "decision_uncertain": "Decision could flip",
    "high_uncertainty": "High uncertainty",
    "out_of_distribution:novelty": "Unlike the training data",
}
OOD_PREFIX: Final = "out_of_distribution:"
FIELD_WORDS: Final = {
    "age": "age",
    "time_in_hospital": "length of stay",
    "number_inpatient": "prior inpatient visits",
    "number_emergency": "prior emergency visits",
    "number_outpatient": "prior outpatient visits",
    "num_medications": "medications",
    "num_lab_procedures": "lab procedures",
    "num_procedures": "procedures",
    "number_diagnoses": "number of diagnoses",
    "diag_1": "primary diagnosis",
    "diag_2": "secondary diagnosis",
    "diag_3": "additional diagnosis",
    "medical_specialty": "admitting specialty",
}
ADMISSION_TYPE_WORDS: Final = {
    "1": "Emergency",
    "2": "Urgent",
    "3": "Elective",
    "4": "Newborn",
    "5": "Not available",
    "6": "Not recorded",
    "7": "Trauma center",
    "8": "Not mapped",
}
