"""The counter agent serves the patient in front of them: ``POST Patient/{id}/$assist``.

A patient who walks up to the counter shows their identity card (or fund card); the agent
types the identifier and the birth date (``identifier``, ``birthDate``: the proof of presence
of ``ehr.security.presence``) and opens an assisted session of ``assist_minutes``.  During it
the agent prints that patient's letters (decisions, payment notices) and access report — not
their clinical file, which stays closed to the counter.  Opening the session and every letter
printed in it are recorded in the patient's trail as assisted access (purposeOfUse PATADMIN /
assisted): their access report says "at the counter, with the patient present".  404 for an
unknown id and a wrong proof alike.
"""
from __future__ import annotations

import orjson

from ehr.operations.registry import Invocation, operation
from ehr.rest.http import fhir_response
from ehr.security.presence import grant_parameters, open_grant, require_caller
from ehr.security.roles import Role
from ehr.security.tables import PRESENCE_ASSIST


@operation("assist", levels={"instance"}, types={"Patient"}, affects_state=True, checks_target=True, callers={Role.PAPER_AGENT},
           definition="https://fhir.sijill.ma/OperationDefinition/Patient-assist")
async def assist(inv: Invocation):
    require_caller(inv, Role.PAPER_AGENT)
    grant = await open_grant(inv, PRESENCE_ASSIST, inv.settings.assist_minutes)
    return fhir_response(orjson.dumps(grant_parameters(grant)))
