"""Outcomes: every answered score kept per model version, and the readmissions the EHR reports."""
