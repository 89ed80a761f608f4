"""FHIR operations ($everything, $validate, …), registered like interactions.

Each operation module registers its handlers with ``@operation``, declaring who may call them
(``callers``: fail closed, see ``ehr.operations.registry``); the REST layer dispatches
``/fhir/$name``, ``/fhir/Type/$name`` and ``/fhir/Type/id/$name`` to them, and the
CapabilityStatement lists what is registered.
"""
from ehr.operations.registry import EVERY_ROLE, Caller, Invocation, Operation, operation, registered

__all__ = ["EVERY_ROLE", "Caller", "Invocation", "Operation", "operation", "registered"]
