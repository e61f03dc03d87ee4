"""triage: clinical uncertainty triage for 30-day readmission risk."""
