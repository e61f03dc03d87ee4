"""ICD-10-CM to ICD-9-CM at the level the encoder sees: the diagnosis group, not the exact code.

Each ICD-10-CM chapter maps to one representative ICD-9-CM code of the matching group in
`app.features.icd9`; diabetes (E10, E11, E13) maps to 250.xx and secondary diabetes (E08, E09)
to 249.00, as ICD-9-CM files them. This is not a clinical crosswalk (CMS GEMs): the encoder
keeps only the group, so the representative code carries everything the model would use.
"""

from typing import Final

# (first, last) three-character category range, inclusive -> representative ICD-9-CM code.
_RANGES: Final = (
    ("A00", "B99", "136.9"),  # infectious and parasitic
    ("C00", "D49", "199.1"),  # neoplasms
    ("D50", "D89", "289.9"),  # blood and immune
    ("E08", "E09", "249.00"),  # secondary diabetes (endocrine, not 250)
    ("E10", "E10", "250.01"),  # type 1 diabetes
    ("E11", "E11", "250.00"),  # type 2 diabetes
    ("E13", "E13", "250.00"),  # other specified diabetes
    ("E00", "E89", "277.9"),  # other endocrine, nutritional and metabolic
    ("F01", "F99", "300.9"),  # mental and behavioural
    ("G00", "G99", "349.9"),  # nervous system
    ("H00", "H59", "379.90"),  # eye
    ("H60", "H95", "388.9"),  # ear
    ("I00", "I99", "459.9"),  # circulatory
    ("J00", "J99", "519.9"),  # respiratory
    ("K00", "K95", "569.9"),  # digestive
    ("L00", "L99", "709.9"),  # skin
    ("M00", "M99", "729.9"),  # musculoskeletal
    ("N00", "N99", "599.9"),  # genitourinary
    ("O00", "O9A", "646.90"),  # pregnancy
    ("P00", "P96", "779.9"),  # perinatal
    ("Q00", "Q99", "759.9"),  # congenital
    ("R00", "R99", "799.9"),  # symptoms and ill-defined
    ("S00", "S99", "959.9"),  # injury
    ("T00", "T88", "977.9"),  # poisoning and other external effects
    ("V00", "Y99", "E928.9"),  # external causes -> E codes
    ("Z00", "Z99", "V49.89"),  # factors influencing health status -> V codes
)

ICD10_RANGES: Final = _RANGES


def icd9_for_icd10(code: str) -> str | None:
    """The representative ICD-9-CM code of an ICD-10-CM code's group; None if it has none."""
    category = code.strip().upper().replace(".", "")[:3]
    if len(category) < 3 or not category[0].isalpha():
        return None
    for first, last, icd9 in _RANGES:
        if first <= category <= last:
            return icd9
    return None
