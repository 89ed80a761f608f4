"""Authentication, authorisation and audit building blocks (SMART on FHIR, IHE BALP)."""
