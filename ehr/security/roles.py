"""What each role may do at all, per resource type and interaction (c r u d s).

This is the ceiling: token scopes narrow it (``Principal.allows``), and row-level rules
(own compartment, care relationship, own fund, own entries) narrow it further where the
queries run.  Keys are resource types or a category: ``@reference`` (directories and
terminology), ``@clinical`` (every other resource type except ``AuditEvent``, which only
explicit entries grant).  An explicit type entry wins over its category.
"""
from __future__ import annotations

from enum import Enum
from functools import lru_cache

from ehr.parsing import is_resource_type


class Role(str, Enum):
    PATIENT = "patient"
    DOCTOR = "doctor"
    PHARMACIST = "pharmacist"
    INSURER = "insurer"  # agent or system of one fund (CNSS, CNOPS, AMO Tadamon, mutuelle)
    PAPER_AGENT = "paper-agent"  # enters paper care sheets on a patient's behalf
    ADMIN = "admin"  # reference data and users, no clinical data
    REGISTRY = "registry"  # RSU/RNP registries: send registry feeds ($registry-feed), read nothing clinical
    STATISTICS = "statistics"  # aggregates only (MeasureReport/$aggregate, $fairness): no row of clinical data
    # In-process callers only (auth_required=False, CLI tools): never accepted from a token.
    UNRESTRICTED = "unrestricted"


TOKEN_ROLES = frozenset(r.value for r in Role if r is not Role.UNRESTRICTED)

REFERENCE_TYPES = frozenset(
    {
        "ActivityDefinition", "CapabilityStatement", "ChargeItemDefinition", "CodeSystem",
        "CompartmentDefinition", "ConceptMap", "DeviceDefinition", "Endpoint", "GraphDefinition",
        "HealthcareService", "ImplementationGuide", "InsurancePlan", "Library", "Location",
        "Medication", "MedicationKnowledge", "MessageDefinition", "NamingSystem",
        "ObservationDefinition", "OperationDefinition", "Organization", "OrganizationAffiliation",
        "PlanDefinition", "Practitioner", "PractitionerRole", "Questionnaire", "SearchParameter",
        "SpecimenDefinition", "StructureDefinition", "StructureMap", "Substance",
        "TerminologyCapabilities", "ValueSet",
    }
)
# Only explicit entries grant these: the audit trail is neither reference nor clinical data.
EXPLICIT_ONLY_TYPES = frozenset({"AuditEvent"})

_FUND_BUSINESS = {
    "Claim": "rs",
    "ClaimResponse": "crus",
    "Coverage": "crus",
    "CoverageEligibilityRequest": "rs",
    "CoverageEligibilityResponse": "crus",
    "ExplanationOfBenefit": "crus",
    "PaymentNotice": "crus",
    "PaymentReconciliation": "crus",
    "DocumentReference": "rs",  # claim attachments
    "Binary": "r",
    "Patient": "rs",  # beneficiaries
    "Communication": "crs",  # requests for supporting information
    "CommunicationRequest": "crs",
}

ROLE_PERMISSIONS: dict[Role, dict[str, str]] = {
    Role.PATIENT: {
        "@clinical": "rs",
        "@reference": "rs",
        "Consent": "crus",
        "QuestionnaireResponse": "crus",
        "Communication": "crs",
        "AuditEvent": "rs",  # their own trail
    },
    Role.DOCTOR: {
        # No delete: clinical records are corrected (entered-in-error), never erased.
        "@clinical": "crus",
        "@reference": "rs",
        "Coverage": "rs",
        "ClaimResponse": "rs",
        "CoverageEligibilityResponse": "rs",
        "ExplanationOfBenefit": "rs",
        "PaymentReconciliation": "rs",  # row rules: the payments made to them or their organisation
        "PaymentNotice": "rs",
        # Consents speak for the patient and guardianship opens a record to another person:
        # patients (and counter agents acting for them) record those, doctors read them.
        "Consent": "rs",
        "RelatedPerson": "rs",
    },
    Role.PHARMACIST: {
        "@reference": "rs",
        "Patient": "r",  # the minimum to dispense: no patient search
        "MedicationRequest": "rus",  # found by number or QR; dispensing updates its status
        "MedicationDispense": "crus",
        "Coverage": "rs",
        "CoverageEligibilityRequest": "crs",
        "CoverageEligibilityResponse": "rs",
        "Claim": "crus",
        "ClaimResponse": "rs",
        "PaymentReconciliation": "rs",  # row rules: the payments made to them or their pharmacy
        "PaymentNotice": "rs",
        "Communication": "crs",  # messages with the prescriber about a presented prescription
    },
    Role.INSURER: {"@reference": "rs", **_FUND_BUSINESS},
    Role.PAPER_AGENT: {
        "@clinical": "crus",  # row rules limit reads and updates to what they entered
        "@reference": "rs",
        "Coverage": "rs",  # coverages come only from the funds (their agents and registry feeds)
        "ClaimResponse": "",
        "ExplanationOfBenefit": "",
        "PaymentReconciliation": "",
        "PaymentNotice": "",
        "CoverageEligibilityResponse": "",
    },
    Role.ADMIN: {"@reference": "cruds"},
    # Its only write is $registry-feed, applied by the server after the feed's checks.
    Role.REGISTRY: {"@reference": "rs"},
    Role.STATISTICS: {"@reference": "rs"},  # the territory code systems; figures only through the operations
    # AuditEvents written through the API are imported records; the server's own trail is
    # served from the append-only audit log and cannot be written at all.
    Role.UNRESTRICTED: {"@clinical": "cruds", "@reference": "cruds", "AuditEvent": "cruds"},
}


def category(res_type: str) -> str | None:
    if res_type in EXPLICIT_ONLY_TYPES:
        return None
    if res_type in REFERENCE_TYPES:
        return "@reference"
    return "@clinical" if is_resource_type(res_type) else None


@lru_cache(maxsize=8192)
def role_allows(role: Role, res_type: str, interaction: str) -> bool:
    table = ROLE_PERMISSIONS[role]
    granted = table.get(res_type)
    if granted is None:
        cat = category(res_type)
        granted = table.get(cat, "") if cat else ""
    return interaction in granted
