"""Sijill SearchParameters the access policy needs indexed (R4B has no standard ones for them).

The policy reads only index tables at query time, so every fact it relies on must be a search
parameter: the deny/permit of a Consent's base provision and the people its exceptions permit,
a Binary's security context, a prescription's number (``MedicationRequest.groupIdentifier``: the
pharmacy's lookup), the fund on an EOB, an eligibility request and a payment notice, and who a
payment was made to.
They are ordinary parameters too: clients may search on them and the CapabilityStatement lists
them.  ``ensure_registered`` runs before anything is written (``ehr.interactions`` imports it),
so every stored resource carries their index rows.
"""
from __future__ import annotations

from ehr.search.registry import Registry, get_registry

BASE = "https://fhir.sijill.ma/SearchParameter"
# The insured person a payment notice reimburses (PaymentNotice.payee admits no Patient).
PAYEE_PERSON = "https://fhir.sijill.ma/StructureDefinition/payment-payee-person"


def _param(base: str, code: str, ptype: str, expression: str, description: str, target: list[str] | None = None) -> dict:
    sp = {
        "resourceType": "SearchParameter",
        "url": f"{BASE}/{base}-{code}",
        "name": f"{base}{code.title().replace('-', '')}",
        "status": "active",
        "code": code,
        "base": [base],
        "type": ptype,
        "expression": expression,
        "description": description,
    }
    if target:
        sp["target"] = target
    return sp


ACTORS = ["CareTeam", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson", "Patient", "Device", "Group"]

SEARCH_PARAMETERS: tuple[dict, ...] = (
    _param("Consent", "provision-type", "token", "Consent.provision.type",
           "deny | permit: the rule of the Consent's base provision"),
    _param("Consent", "exempt-actor", "reference", "Consent.provision.provision.where(type = 'permit').actor.reference",
           "Who the permitting exceptions of a deny provision name (\"everyone but ...\")", ACTORS),
    _param("Binary", "security-context", "reference", "Binary.securityContext",
           "The resource whose access rules apply to this Binary"),
    _param("ExplanationOfBenefit", "insurer", "reference", "ExplanationOfBenefit.insurer",
           "The fund that adjudicated the claim", ["Organization"]),
    _param("CoverageEligibilityRequest", "insurer", "reference", "CoverageEligibilityRequest.insurer",
           "The fund asked about eligibility", ["Organization"]),
    _param("PaymentNotice", "payment", "reference", "PaymentNotice.payment",
           "The payment (PaymentReconciliation) notified", ["PaymentReconciliation"]),
    _param("PaymentReconciliation", "payee", "reference", "PaymentReconciliation.detail.payee",
           "Who a line of the reconciliation was paid to (a provider paid directly)", ["Organization", "Practitioner", "PractitionerRole"]),
    _param("PaymentNotice", "payee", "reference",
           f"PaymentNotice.payee | PaymentNotice.extension('{PAYEE_PERSON}').value",
           "Who was paid: the provider, or the insured person reimbursed",
           ["Organization", "Practitioner", "PractitionerRole", "Patient", "RelatedPerson"]),
    _param("MedicationRequest", "group-identifier", "token", "MedicationRequest.groupIdentifier",
           "The prescription number (https://fhir.sijill.ma/sid/prescription) all lines of one prescription share"),
)


def _fill_targets(registry: Registry, sp: dict) -> dict:
    if sp["type"] == "reference" and "target" not in sp:
        return {**sp, "target": sorted(registry.resource_types)}
    return sp


def ensure_registered(registry: Registry | None = None) -> None:
    """Add the parameters once per registry (idempotent: a second call changes nothing)."""
    registry = registry or get_registry()
    for sp in SEARCH_PARAMETERS:
        if registry.by_url(sp["url"]) is None:
            registry.add(_fill_targets(registry, sp))
