"""FHIR Bulk Data export (``$export``): NDJSON files per type, written to object storage by a
background task of the server; see docs/storage.md ("Bulk export")."""
