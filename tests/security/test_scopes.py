"""SMART scope parsing and the role ⊓ scope matrix."""
from __future__ import annotations

import pytest

from ehr.outcome import FHIRError
from ehr.security.principal import Principal, principal_from_claims
from ehr.security.roles import Role, role_allows
from ehr.security.scopes import ScopeError, ScopeSet, parse_scope
from ehr.settings import Settings


def test_v2_scope():
    s = parse_scope("patient/Observation.rs")
    assert (s.context, s.res_type, s.interactions, s.constraint) == ("patient", "Observation", frozenset("rs"), ())


def test_v2_wildcard_all_permissions():
    s = parse_scope("user/*.cruds")
    assert s.res_type == "*" and s.interactions == frozenset("cruds")


@pytest.mark.parametrize(
    "v1,perms", [("patient/Observation.read", "rs"), ("user/Patient.write", "cud"), ("system/*.*", "cruds")]
)
def test_v1_mapped(v1, perms):
    assert parse_scope(v1).interactions == frozenset(perms)


def test_query_constrained_scope():
    s = parse_scope("patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory")
    assert s.constraint == (("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),)
    multi = parse_scope("user/Claim.rs?status=active&use=claim")
    assert multi.constraint == (("status", "active"), ("use", "claim"))


@pytest.mark.parametrize(
    "bad",
    [
        "patient/Observation.sr",  # out of order
        "patient/Observation.rr",  # repeated
        "patient/Observation.x",
        "patient/Observation.",
        "user/NotAType.rs",
        "user/Observation.rs?broken",
        "system/Observation",
    ],
)
def test_malformed_scopes(bad):
    with pytest.raises(ScopeError):
        parse_scope(bad)


def test_identity_and_foreign_scopes_grant_nothing():
    scopes = ScopeSet.parse("openid fhirUser launch/patient offline_access email other/thing")
    assert not scopes.scopes and {"openid", "fhirUser", "launch/patient"} <= scopes.identity
    assert not scopes.allows("Patient", "r")


def test_lenient_parse_drops_malformed_strict_raises():
    lenient = ScopeSet.parse("patient/Observation.xx patient/Condition.rs")
    assert [str(s) for s in lenient.scopes] == ["patient/Condition.rs"]
    with pytest.raises(ScopeError):
        ScopeSet.parse("patient/Observation.xx", strict=True)


def test_allows_and_constraints():
    scopes = ScopeSet.parse("patient/Observation.rs?category=laboratory patient/Observation.s?category=vital-signs user/Condition.r")
    assert scopes.allows("Observation", "r") and scopes.allows("Observation", "s")
    assert not scopes.allows("Observation", "c") and not scopes.allows("Condition", "s")
    assert scopes.constraints("Observation", "s") == ((("category", "laboratory"),), (("category", "vital-signs"),))
    assert scopes.constraints("Condition", "r") == ()
    assert scopes.constraints("Patient", "r") is None
    assert scopes.patient_only("Observation", "r") and not scopes.patient_only("Condition", "r")
    with pytest.raises(ValueError):
        scopes.allows("Observation", "x")


def test_unconstrained_scope_wins_over_constrained():
    scopes = ScopeSet.parse("user/Observation.rs?category=laboratory user/Observation.rs")
    assert scopes.constraints("Observation", "s") == ()


def test_narrowing_for_client_credentials():
    allowed = ScopeSet.parse("system/Claim.crus system/Patient.r system/Observation.rs?category=laboratory")
    asked = ScopeSet.parse("system/Claim.rs system/Claim.d system/Patient.rs system/Observation.rs?category=laboratory system/Observation.rs")
    assert [str(s) for s in asked.narrowed_to(allowed).scopes] == ["system/Claim.rs", "system/Observation.rs?category=laboratory"]


# --- role ⊓ scope -----------------------------------------------------------------------------------
ALL = "user/*.cruds"
MATRIX = [
    # role, scopes, resource type, interaction, allowed
    (Role.DOCTOR, ALL, "Observation", "c", True),
    (Role.DOCTOR, ALL, "Observation", "d", False),  # role: no erasure of clinical records
    (Role.DOCTOR, "user/Observation.rs", "Observation", "c", False),  # scope narrows
    (Role.DOCTOR, ALL, "Organization", "u", False),  # reference data is the admin's
    (Role.DOCTOR, ALL, "AuditEvent", "s", False),
    (Role.PATIENT, "patient/*.cruds", "Observation", "r", True),
    (Role.PATIENT, "patient/*.cruds", "Observation", "c", False),
    (Role.PATIENT, "patient/*.cruds", "Consent", "c", True),
    (Role.PATIENT, "patient/*.cruds", "AuditEvent", "s", True),  # their own trail
    (Role.PATIENT, "patient/Observation.rs", "Consent", "c", False),
    (Role.PHARMACIST, ALL, "MedicationRequest", "r", True),
    (Role.PHARMACIST, ALL, "MedicationDispense", "c", True),
    (Role.PHARMACIST, ALL, "Patient", "r", True),
    (Role.PHARMACIST, ALL, "Patient", "s", False),  # minimum data: no patient search
    (Role.PHARMACIST, ALL, "Condition", "r", False),
    (Role.INSURER, ALL, "Claim", "s", True),
    (Role.INSURER, ALL, "ClaimResponse", "c", True),
    (Role.INSURER, ALL, "Claim", "c", False),
    (Role.INSURER, ALL, "Observation", "r", False),
    (Role.INSURER, "system/Claim.rs", "ClaimResponse", "c", False),
    (Role.PAPER_AGENT, ALL, "Encounter", "c", True),
    (Role.PAPER_AGENT, ALL, "ClaimResponse", "r", False),
    (Role.ADMIN, ALL, "Organization", "d", True),
    (Role.ADMIN, ALL, "CodeSystem", "c", True),
    (Role.ADMIN, ALL, "Patient", "r", False),  # no clinical data
    (Role.ADMIN, ALL, "Observation", "s", False),
    (Role.ADMIN, "user/Organization.rs", "Organization", "u", False),
]


@pytest.mark.parametrize("role,scopes,res_type,interaction,expected", MATRIX)
def test_role_meet_scope(role, scopes, res_type, interaction, expected):
    p = Principal(subject="s", role=role, scopes=ScopeSet.parse(scopes))
    assert p.allows(res_type, interaction) is expected


def test_scopes_never_widen_a_role():
    # Whatever the scopes say, nothing beyond the role's ceiling.
    everything = ScopeSet.parse("system/*.cruds user/*.cruds patient/*.cruds")
    for role in Role:
        p = Principal(subject="s", role=role, scopes=everything)
        for res_type in ("Patient", "Observation", "Claim", "Organization", "AuditEvent", "MedicationDispense"):
            for i in "cruds":
                assert p.allows(res_type, i) == role_allows(role, res_type, i)


def test_require_explains_which_layer_refused():
    p = Principal(subject="s", role=Role.DOCTOR, scopes=ScopeSet.parse("user/Observation.rs"))
    p.require("Observation", "r")
    with pytest.raises(FHIRError) as role_refusal:
        p.require("Observation", "d")
    assert role_refusal.value.status == 403 and "doctor role" in role_refusal.value.issues[0].diagnostics
    with pytest.raises(FHIRError) as scope_refusal:
        p.require("Observation", "c")
    assert 'insufficient_scope' in scope_refusal.value.headers["WWW-Authenticate"]


def test_unrestricted_principal():
    p = Principal.unrestricted()
    # In-process tools may import AuditEvents from elsewhere as ordinary resources; the server's
    # own trail lives in the append-only log, where no role can write (see test_access_matrix).
    assert p.allows("Observation", "d") and p.allows("AuditEvent", "r") and p.allows("AuditEvent", "c")


# --- principal from claims ------------------------------------------------------------------------------
SETTINGS = Settings(_env_file=None)


def test_principal_from_claims():
    p = principal_from_claims(
        {
            "sub": "u1",
            "iss": "https://idp",
            "role": "insurer",
            "fund": "Organization/cnss",
            "fhirUser": "https://fhir.sijill.ma/fhir/Practitioner/agent-1",
            "scope": "openid user/Claim.rs",
            "jti": "j1",
            "azp": "portal",
            "exp": 2_000_000_000,
        },
        SETTINGS,
    )
    assert (p.role, p.fund, p.fhir_user, p.client_id, p.token_id) == (Role.INSURER, "Organization/cnss", "Practitioner/agent-1", "portal", "j1")
    assert p.expires_at == 2_000_000_000 * 1_000_000 and not p.is_system
    assert p.allows("Claim", "s") and not p.allows("ClaimResponse", "c")


def test_patient_role_from_fhir_user_and_launch_context():
    p = principal_from_claims({"sub": "u2", "fhirUser": "Patient/pat-9", "patient": "pat-9", "scope": "patient/*.rs"}, SETTINGS)
    assert p.role is Role.PATIENT and p.patient_context == "Patient/pat-9"


def test_system_client_is_system():
    p = principal_from_claims({"sub": "cnss-gateway", "client_id": "cnss-gateway", "role": "insurer", "fund": "Organization/cnss"}, SETTINGS)
    assert p.is_system


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": "x", "role": "superuser"},
        {"sub": "x", "role": "unrestricted"},  # in-process only, never from a token
        {"sub": "x", "fhirUser": "Practitioner/1"},  # no role
        {"sub": "x", "role": "insurer"},  # no fund
        {"sub": "x", "role": "patient", "fhirUser": "Practitioner/1"},
        {"sub": "x", "role": ["doctor", "admin"]},
        {"role": "doctor"},  # no subject
    ],
)
def test_claims_without_usable_role_are_forbidden(bad):
    with pytest.raises(FHIRError) as exc:
        principal_from_claims(bad, SETTINGS)
    assert exc.value.status == 403
