"""FHIR XML (``application/fhir+xml``) at the edge: one converter to and from FHIR JSON, driven
by the shipped StructureDefinitions (element order, types, cardinality), generic over types."""
