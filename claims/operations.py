"""``Claim/$submit`` (a Bundle: the care sheet and what it references) and ``Subscription/{id}/$status``."""
from __future__ import annotations

import orjson

from claims.notify import subscription_status
from ehr.interactions.transaction import Options, transaction
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.rest.http import fhir_response
from ehr.security.principal import Principal
from ehr.security.roles import Role
from ehr.security.trail import BundleTrail
from ehr.store import repository
from ehr.store.db import read_connection


def caller(inv: Invocation) -> Principal | None:
    """Who calls an operation: the token's principal (the unrestricted one when the server runs
    without tokens), or None outside a request's authentication."""
    result = getattr(inv.request.state, "auth_result", None)
    return result if isinstance(result, Principal) else None


def as_caller(inv: Invocation) -> Options:
    """Transaction options of the transaction endpoint: the caller's access rules, write guard
    (entered-by, the paper channel's Provenance) and one audit event per entry."""
    s, security = inv.settings, inv.request.state.security
    return Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, True, security.access,
                   security.guard, BundleTrail(security.audit), attempts=s.db_retry_attempts)


def _as_transaction(body: dict) -> tuple[dict, int]:
    """A submission Bundle as a transaction; entries without a request are POSTed, and a
    resource carrying a business identifier is created only if no such resource exists, so
    resubmitting the same Bundle creates nothing twice.  Returns it and the Claim's index."""
    entries = body.get("entry")
    if not isinstance(entries, list) or not entries:
        raise FHIRError.of(400, "required", "Le Bundle doit contenir la feuille de soins et ce qu'elle référence", "Bundle.entry")
    out, claim_at = [], []
    for i, e in enumerate(entries):
        res = e.get("resource") if isinstance(e, dict) else None
        if not isinstance(res, dict) or not isinstance(res.get("resourceType"), str):
            raise FHIRError.of(400, "required", "Chaque entrée porte une ressource", f"Bundle.entry[{i}].resource")
        rt = res["resourceType"]
        request = e.get("request")
        if request is None:
            request = {"method": "POST", "url": rt}
            ident = next((x for x in res.get("identifier") or [] if isinstance(x, dict) and x.get("system") and x.get("value")), None)
            if ident and rt != "Claim":
                request["ifNoneExist"] = f"identifier={ident['system']}|{ident['value']}"
        entry = {"resource": res, "request": request}
        if e.get("fullUrl"):
            entry["fullUrl"] = e["fullUrl"]
        out.append(entry)
        if rt == "Claim":
            claim_at.append(i)
    if len(claim_at) != 1:
        raise FHIRError.of(422, "invalid", "Le Bundle doit contenir exactement une feuille de soins (Claim)", "Bundle.entry")
    return {"resourceType": "Bundle", "type": "transaction", "entry": out}, claim_at[0]


@operation("submit", levels={"type"}, types={"Claim"}, affects_state=True,
           callers={Role.DOCTOR, Role.PHARMACIST, Role.PAPER_AGENT},
           definition="http://hl7.org/fhir/OperationDefinition/Claim-submit")
async def submit(inv: Invocation):
    body = inv.resource if inv.resource is not None else inv.first("resource")
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise FHIRError.of(400, "invalid", "Claim/$submit prend un Bundle (la feuille de soins et ce qu'elle référence)", "Bundle")
    tx, claim_index = _as_transaction(body)
    s = inv.settings
    result = orjson.loads(await transaction(inv.engine, tx, as_caller(inv)))
    entry = result["entry"][claim_index]
    status = int(entry["response"]["status"].split()[0])
    headers = {}
    if entry["response"].get("location"):
        headers["Location"] = f"{s.base_url}/{entry['response']['location']}"
    return fhir_response(orjson.dumps(entry["resource"]), status, headers)


@operation("status", levels={"instance"}, types={"Subscription"}, callers={Role.DOCTOR, Role.PAPER_AGENT},
           definition="http://hl7.org/fhir/OperationDefinition/Subscription-status")
async def status(inv: Invocation):
    async with read_connection(inv.engine) as conn:
        sub = await repository.current(conn, "Subscription", inv.res_id, access=inv.access)
        if sub is None or sub.deleted:
            raise not_found("Subscription", inv.res_id)
        out = await subscription_status(conn, sub.resource())
    return fhir_response(orjson.dumps(out))
