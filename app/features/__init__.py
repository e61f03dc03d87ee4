"""Feature encoding shared by training and serving."""

from app.features.encoder import FeatureSpec, columns_from_records, is_missing, normalise_category

__all__ = ["FeatureSpec", "columns_from_records", "is_missing", "normalise_category"]
