"""FHIR operations ($everything, $validate, …), registered like interactions.

Each operation module registers its handlers with ``@operation``; the REST layer dispatches
``/fhir/$name``, ``/fhir/Type/$name`` and ``/fhir/Type/id/$name`` to them, and the
CapabilityStatement lists what is registered.
"""
from ehr.operations.registry import Invocation, Operation, operation, registered

__all__ = ["Invocation", "Operation", "operation", "registered"]
