"""CDS Hooks 2.0 in, FHIR R4 RiskAssessment out: the EHR's transport to the data plane."""
