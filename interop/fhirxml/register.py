"""Plugs FHIR XML in as a representation served and accepted at the edge (``ehr.hooks``)."""
from ehr import hooks
from interop.fhirxml.reader import xml_to_json
from interop.fhirxml.writer import json_to_xml

XML_TYPES = frozenset({"application/fhir+xml", "application/xml+fhir", "application/xml", "text/xml"})

hooks.representations.append(hooks.Representation(
    format="xml", media_type="application/fhir+xml", media_types=XML_TYPES, from_json=json_to_xml, to_json=xml_to_json,
))
