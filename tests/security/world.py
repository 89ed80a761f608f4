"""The scenario the access-control specifications read: who is who, and what the record holds.

Patients
  pa  Amina (CIN AA111): Dr D1 sees her in an Encounter ten days ago, Dr D3 has been in her
      CareTeam since then.  Her psychiatric Condition is labelled PSY, and her Consent hides
      PSY from everyone but D3.  She is the mother (Patient.link -> RelatedPerson rp-c) of
  pc  Chama, a minor.
  pb  Brahim (CIN BB222, CNOPS number CN-7788): D1 saw him in 2020 (outside the care window);
      D2 has a current Encounter but Brahim's Consent denies D2; another Consent permits D3.
Money
  Amina is covered by CNSS (cov-a), Brahim by CNOPS (cov-b).  claim-a (CNSS) was written by the
  pharmacy ph-org, with its response cr-a, an attachment doc-a and its Binary bin-a.
Prescriptions
  mr-a (Amina, number RX_A) and mr-b (Brahim, number RX_B), prescribed by D1.
Users (fhirUser)
  doctors D1, D2, D3, D4 (no relationship at all); pharmacist PH (PractitionerRole at ph-org);
  CNSS agent AG; paper-channel agent PA; admin AD; patients pa and pc's mother (= pa).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import httpx

from ehr.interactions.transaction import Options, transaction
from ehr.security.demo import DemoUser
from ehr.security.roles import Role

INPE = "https://fhir.sijill.ma/sid/inpe"
CIN = "https://fhir.sijill.ma/sid/cin"
RX = "https://fhir.sijill.ma/sid/prescription"
RX_A, RX_B = "2GA1-850M-2GAY", "2RB1-C5GP-2RBT"  # prescription numbers (random ones, check symbol last)
ACTCODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
ROLECODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
PRIVACY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]}
# Every Consent names the rule it follows (ppc-1): the patient's opt-in to sharing.
OPT_IN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]}
PSY = {"system": ACTCODE, "code": "PSY"}

USERS = {
    "pa": DemoUser("pa", Role.PATIENT, "Patient/pa"),
    "pb": DemoUser("pb", Role.PATIENT, "Patient/pb"),
    "D1": DemoUser("D1", Role.DOCTOR, "Practitioner/d1"),
    "D2": DemoUser("D2", Role.DOCTOR, "Practitioner/d2"),
    "D3": DemoUser("D3", Role.DOCTOR, "Practitioner/d3"),
    "D4": DemoUser("D4", Role.DOCTOR, "Practitioner/d4"),
    "PH": DemoUser("PH", Role.PHARMACIST, "Practitioner/ph"),
    "AG": DemoUser("AG", Role.INSURER, "Practitioner/ag", "Organization/cnss"),
    "AGO": DemoUser("AGO", Role.INSURER, "Practitioner/ago", "Organization/cnops"),
    "PA": DemoUser("PA", Role.PAPER_AGENT, "Practitioner/pa-agent"),
    "AD": DemoUser("AD", Role.ADMIN, "Practitioner/ad"),
}


def _instant(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ref(r: str) -> dict:
    return {"reference": r}


def resources() -> list[dict]:
    now = datetime.now(timezone.utc)
    recent = {"start": _instant(now - timedelta(days=10))}
    practitioners = [
        {"resourceType": "Practitioner", "id": pid, "name": [{"family": pid.upper()}]}
        for pid in ("d1", "d2", "d3", "d4", "ph", "ag", "ago", "pa-agent", "ad")
    ]
    return [
        {"resourceType": "Organization", "id": "cnss", "name": "CNSS"},
        {"resourceType": "Organization", "id": "cnops", "name": "CNOPS"},
        {"resourceType": "Organization", "id": "ph-org", "name": "Pharmacie Atlas", "identifier": [{"system": INPE, "value": "900100"}]},
        *practitioners,
        {"resourceType": "PractitionerRole", "id": "ph-role", "practitioner": _ref("Practitioner/ph"), "organization": _ref("Organization/ph-org")},
        {"resourceType": "Patient", "id": "pa", "name": [{"family": "Alaoui", "given": ["Amina"]}], "gender": "female",
         "birthDate": "1980-02-03", "telecom": [{"system": "phone", "value": "+212600000001"}],
         "identifier": [{"system": CIN, "value": "AA111"}],
         "link": [{"other": _ref("RelatedPerson/rp-c"), "type": "seealso"}]},
        {"resourceType": "Patient", "id": "pb", "name": [{"family": "Bennani", "given": ["Brahim"]}], "gender": "male", "birthDate": "1975-06-07",
         "identifier": [{"system": CIN, "value": "BB222"}, {"system": "https://fhir.sijill.ma/sid/cnops", "value": "CN-7788"}],
         "address": [{"city": "Rabat"}]},
        {"resourceType": "Patient", "id": "pc", "name": [{"family": "Alaoui", "given": ["Chama"]}], "gender": "female",
         "birthDate": (now - timedelta(days=365 * 8)).date().isoformat()},
        {"resourceType": "RelatedPerson", "id": "rp-c", "patient": _ref("Patient/pc"), "active": True,
         "relationship": [{"coding": [{"system": ROLECODE, "code": "MTH"}]}], "name": [{"family": "Alaoui", "given": ["Amina"]}]},
        {"resourceType": "Encounter", "id": "enc-a", "status": "finished", "class": {"code": "AMB"}, "subject": _ref("Patient/pa"),
         "participant": [{"individual": _ref("Practitioner/d1")}], "period": recent},
        {"resourceType": "CareTeam", "id": "ct-a", "status": "active", "subject": _ref("Patient/pa"),
         "participant": [{"member": _ref("Practitioner/d3")}], "period": recent},
        {"resourceType": "Encounter", "id": "enc-b-old", "status": "finished", "class": {"code": "AMB"}, "subject": _ref("Patient/pb"),
         "participant": [{"individual": _ref("Practitioner/d1")}], "period": {"start": "2020-01-01T08:00:00Z", "end": "2020-01-01T09:00:00Z"}},
        {"resourceType": "Encounter", "id": "enc-b-d2", "status": "in-progress", "class": {"code": "AMB"}, "subject": _ref("Patient/pb"),
         "participant": [{"individual": _ref("Practitioner/d2")}], "period": recent},
        {"resourceType": "Observation", "id": "obs-a", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
         "subject": _ref("Patient/pa"), "encounter": _ref("Encounter/enc-a"), "performer": [_ref("Practitioner/d1")]},
        {"resourceType": "Observation", "id": "obs-b", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
         "subject": _ref("Patient/pb")},
        {"resourceType": "Observation", "id": "obs-c", "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
         "subject": _ref("Patient/pc")},
        {"resourceType": "Condition", "id": "cond-a-psy", "meta": {"security": [PSY]}, "subject": _ref("Patient/pa"),
         "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "F32"}]}},
        {"resourceType": "Consent", "id": "con-a", "status": "active", "scope": PRIVACY, "policyRule": OPT_IN, "patient": _ref("Patient/pa"),
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "provision": {"type": "deny", "securityLabel": [PSY], "provision": [{"type": "permit", "actor": [
             {"role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "PRCP"}]},
              "reference": _ref("Practitioner/d3")}]}]}},
        {"resourceType": "Consent", "id": "con-b-deny", "status": "active", "scope": PRIVACY, "policyRule": OPT_IN, "patient": _ref("Patient/pb"),
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "provision": {"type": "deny", "actor": [{"role": {"text": "any"}, "reference": _ref("Practitioner/d2")}]}},
        {"resourceType": "Consent", "id": "con-b-permit", "status": "active", "scope": PRIVACY, "policyRule": OPT_IN, "patient": _ref("Patient/pb"),
         "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0"}]}],
         "provision": {"type": "permit", "actor": [{"role": {"text": "any"}, "reference": _ref("Practitioner/d3")}]}},
        {"resourceType": "MedicationRequest", "id": "mr-a", "status": "active", "intent": "order", "groupIdentifier": {"system": RX, "value": RX_A},
         "medicationCodeableConcept": {"text": "Amoxicilline 1g"}, "subject": _ref("Patient/pa"), "requester": _ref("Practitioner/d1"),
         "dispenseRequest": {"quantity": {"value": 3}}},
        {"resourceType": "MedicationRequest", "id": "mr-b", "status": "active", "intent": "order", "groupIdentifier": {"system": RX, "value": RX_B},
         "medicationCodeableConcept": {"text": "Paracétamol"}, "subject": _ref("Patient/pb"), "requester": _ref("Practitioner/d1"),
         "dispenseRequest": {"quantity": {"value": 2}}},
        {"resourceType": "Coverage", "id": "cov-a", "status": "active", "beneficiary": _ref("Patient/pa"), "payor": [_ref("Organization/cnss")]},
        {"resourceType": "Coverage", "id": "cov-b", "status": "active", "beneficiary": _ref("Patient/pb"), "payor": [_ref("Organization/cnops")]},
        {"resourceType": "Claim", "id": "claim-a", "status": "active", "type": {"text": "pharmacy"}, "use": "claim", "patient": _ref("Patient/pa"),
         "created": "2025-01-01", "insurer": _ref("Organization/cnss"), "provider": _ref("Organization/ph-org"), "priority": {"text": "normal"},
         "insurance": [{"sequence": 1, "focal": True, "coverage": _ref("Coverage/cov-a")}]},
        {"resourceType": "Claim", "id": "claim-b", "status": "active", "type": {"text": "pharmacy"}, "use": "claim", "patient": _ref("Patient/pb"),
         "created": "2025-01-01", "insurer": _ref("Organization/cnops"), "provider": _ref("Practitioner/d2"), "priority": {"text": "normal"},
         "insurance": [{"sequence": 1, "focal": True, "coverage": _ref("Coverage/cov-b")}]},
        {"resourceType": "ClaimResponse", "id": "cr-a", "status": "active", "type": {"text": "pharmacy"}, "use": "claim", "patient": _ref("Patient/pa"),
         "created": "2025-01-02", "insurer": _ref("Organization/cnss"), "request": _ref("Claim/claim-a"), "outcome": "complete"},
        {"resourceType": "DocumentReference", "id": "doc-a", "status": "current", "subject": _ref("Patient/pa"),
         "context": {"related": [_ref("Claim/claim-a")]}, "content": [{"attachment": {"url": "Binary/bin-a", "contentType": "application/pdf"}}]},
        {"resourceType": "Binary", "id": "bin-a", "contentType": "application/pdf", "securityContext": _ref("DocumentReference/doc-a"), "data": "JVBERi0="},
    ]


@dataclass
class World:
    app: object
    clients: dict = field(default_factory=dict)

    @property
    def issuer(self):
        return self.app.state.security.issuer

    def token(self, user: str | DemoUser, scopes: str | None = None) -> str:
        who = USERS[user] if isinstance(user, str) else user
        return self.issuer.issue_token(who, scopes).access_token

    def client(self, user: str | DemoUser | None, scopes: str | None = None, **headers) -> httpx.AsyncClient:
        """An HTTP client acting as ``user`` (None: no token at all)."""
        base = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json", **headers}
        if user is not None:
            base["Authorization"] = f"Bearer {self.token(user, scopes)}"
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("10.0.0.7", 5555)), base_url="http://test/fhir", headers=base
        )


async def seed_world(app, scenario: list[dict] | None = None) -> World:
    """Write the scenario (default: the one above) in-process, as the server itself would: no
    caller, no policy."""
    s = app.state.security.settings
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
               for r in (resources() if scenario is None else scenario)]
    await transaction(app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)
    return World(app)
