"""Who attacks what: the adversaries, the resources each must not reach, and what of them must never
show in an answer.

The world of ``tests/security/world.py`` plus a few resources only this suite reads (``EXTRA``):

* ``obs-a-psy``: Amina's PHQ-9 score, labelled PSY (hidden from Dr D1 by her Consent), performed
  by Dr Tazi (``psy-doc``) of the Clinique Nour (``psy-clinic``) — nothing else names them;
* ``con-c-hide`` / ``obs-c-sex``: Chama's Consent hides the SEX label from her mother (the
  guardian), and a SEX-labelled Observation of Chama;
* ``pr-cnss`` / ``eob-a``: CNSS's payment to the pharmacy for claim-a and its EOB to Amina;
* ``sub-hidden``: a Subscription no token role may see;
* Brahim gets his CIN (``BB222``) so that searches and chains by identifier can aim at him.

The adversaries (issue 10, "How it is shown"): a patient, a guardian, a doctor without any
relationship, a doctor denied by Consent, a doctor from whom a label is hidden, a pharmacist to
whom nothing was presented, an insurer of another fund, a counter agent who did not enter the
data, and the admin.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

import orjson
from sqlalchemy import select

from ehr.interactions.transaction import Options, transaction
from ehr.security.demo import DemoUser
from ehr.security.roles import Role, role_allows
from ehr.store import repository
from ehr.store.schema import resource
from tests.security.world import ACTCODE, OPT_IN, PRIVACY, USERS, World

CIN = "https://fhir.sijill.ma/sid/cin"
LOINC = "http://loinc.org"
PSY = {"system": ACTCODE, "code": "PSY"}
SEX = {"system": ACTCODE, "code": "SEX"}
PHQ9 = "44249-1"  # obs-a-psy's code: only the hidden PSY Observation has it
SEX_CODE = "97095-5"  # obs-c-sex's code
BB222 = "BB222"


def _ref(r: str) -> dict:
    return {"reference": r}


EXTRA: list[dict] = [
    {"resourceType": "Practitioner", "id": "psy-doc", "name": [{"family": "Tazi", "given": ["Youssef"]}]},
    {"resourceType": "Organization", "id": "psy-clinic", "name": "Clinique Nour"},
    {"resourceType": "Organization", "id": "ph-org-2", "name": "Pharmacie Zerktouni"},  # another pharmacy
    {"resourceType": "Observation", "id": "obs-a-psy", "status": "final", "meta": {"security": [PSY]},
     "code": {"coding": [{"system": LOINC, "code": PHQ9}]}, "subject": _ref("Patient/pa"), "valueInteger": 17,
     "performer": [_ref("Practitioner/psy-doc"), _ref("Organization/psy-clinic")]},
    {"resourceType": "Consent", "id": "con-c-hide", "status": "active", "scope": PRIVACY, "policyRule": OPT_IN, "patient": _ref("Patient/pc"),
     "category": [{"coding": [{"system": LOINC, "code": "59284-0"}]}],
     "provision": {"type": "deny", "securityLabel": [SEX], "actor": [{"role": {"text": "guardian"}, "reference": _ref("Patient/pa")}]}},
    {"resourceType": "Observation", "id": "obs-c-sex", "status": "final", "meta": {"security": [SEX]},
     "code": {"coding": [{"system": LOINC, "code": SEX_CODE}]}, "subject": _ref("Patient/pc"), "valueString": "Confidentiel-Chama"},
    {"resourceType": "PaymentReconciliation", "id": "pr-cnss", "status": "active", "created": "2025-02-01",
     "paymentIssuer": _ref("Organization/cnss"), "requestor": _ref("Organization/ph-org"), "paymentDate": "2025-02-01",
     "paymentAmount": {"value": 123.45, "currency": "MAD"}, "identifier": [{"system": "https://fhir.sijill.ma/sid/payment", "value": "PAY-CNSS-77"}],
     "detail": [{"type": {"text": "payment"}, "request": _ref("Claim/claim-a"), "response": _ref("ClaimResponse/cr-a"),
                 "payee": _ref("Organization/ph-org"), "amount": {"value": 123.45, "currency": "MAD"}}]},
    {"resourceType": "ExplanationOfBenefit", "id": "eob-a", "status": "active", "type": {"text": "pharmacy"}, "use": "claim",
     "patient": _ref("Patient/pa"), "created": "2025-01-02", "insurer": _ref("Organization/cnss"), "provider": _ref("Organization/ph-org"),
     "claim": _ref("Claim/claim-a"), "outcome": "complete", "insurance": [{"focal": True, "coverage": _ref("Coverage/cov-a")}]},
    {"resourceType": "Subscription", "id": "sub-hidden", "status": "active", "reason": "suivi", "criteria": "ClaimResponse?requestor=Organization/ph-org",
     "channel": {"type": "rest-hook", "endpoint": "https://cabinet.example.ma/hook", "payload": "application/fhir+json"}},
]
NOBODY = ("Subscription/sub-hidden",)  # what no token role sees at all
CHAMA = DemoUser("pc", Role.PATIENT, "Patient/pc")  # the minor herself: what is hidden from her mother is hers
MISSING = "no-such-id-0"  # an id no resource has: invisible resources must answer exactly as this one


@dataclass(frozen=True)
class Adversary:
    name: str
    user: str
    targets: tuple[str, ...]  # what they must not reach
    extra_secrets: tuple[str, ...] = ()  # more than the targets' ids, names and identifiers
    legit: tuple[str, ...] = ()  # strings they may see anyway (a visible resource names them)
    # Directory entries (readable by all) that only a target names: never shown with a patient's data.
    linked: tuple[str, ...] = ()
    sees: tuple[str, ...] = ()  # patients whose record they may open ($everything must hide the targets)

    @property
    def role(self) -> Role:
        return USERS[self.user].role

    def may(self, res_type: str, interaction: str) -> bool:
        return role_allows(self.role, res_type, interaction)

    def expected(self, res_type: str) -> int:
        """The answer to reading an invisible resource of this type: 404, or 403 for a type the role never reads."""
        return 404 if self.may(res_type, "r") else 403


ADVERSARIES = [
    Adversary("patient", "pb", ("Patient/pa", "Observation/obs-a", "Condition/cond-a-psy", "Claim/claim-a", "MedicationRequest/mr-a",
                                "ClaimResponse/cr-a", "PaymentReconciliation/pr-cnss"),
              ("F32",)),
    Adversary("guardian", "pa", ("Patient/pb", "Observation/obs-b", "Observation/obs-c-sex", "Claim/claim-b"),
              ("Confidentiel-Chama", SEX_CODE, BB222), sees=("pc", "pa")),
    Adversary("doctor-unrelated", "D4", ("Patient/pa", "Observation/obs-a", "MedicationRequest/mr-a", "Patient/pb", "ClaimResponse/cr-a",
                                         "ExplanationOfBenefit/eob-a"), ("Amoxicilline",)),
    Adversary("doctor-denied", "D2", ("Patient/pb", "Observation/obs-b", "Encounter/enc-b-d2", "Claim/claim-b"), (BB222,)),
    Adversary("doctor-hidden-label", "D1", ("Condition/cond-a-psy", "Observation/obs-a-psy"),
              ("F32", PHQ9), sees=("pa",), linked=("Practitioner/psy-doc", "Organization/psy-clinic", "Tazi", "Clinique Nour")),
    Adversary("pharmacist", "PH", ("MedicationRequest/mr-a", "MedicationRequest/mr-b", "Patient/pa", "Coverage/cov-b"),
              ("Amoxicilline", "Paracétamol"), legit=("Patient/pa", "Coverage/cov-a")),
    Adversary("insurer-other-fund", "AGO", ("Claim/claim-a", "ClaimResponse/cr-a", "Coverage/cov-a", "Patient/pa",
                                            "DocumentReference/doc-a", "Binary/bin-a", "PaymentReconciliation/pr-cnss",
                                            "ExplanationOfBenefit/eob-a"), ("JVBERi0=", "PAY-CNSS-77"), sees=("pb",)),
    Adversary("paper-agent", "PA", ("Patient/pa", "Observation/obs-b", "Claim/claim-a", "DocumentReference/doc-a", "Patient/pb",
                                    "ClaimResponse/cr-a", "PaymentReconciliation/pr-cnss")),
    Adversary("admin", "AD", ("Patient/pa", "Observation/obs-a", "Claim/claim-a", "ClaimResponse/cr-a")),
]
BY_NAME = {a.name: a for a in ADVERSARIES}
NAMES = [a.name for a in ADVERSARIES]


def _strings_of(res: dict) -> set[str]:
    """What identifies a resource: its reference, and the values of identifiers and names."""
    found = {f"{res['resourceType']}/{res['id']}"}
    if len(res["id"]) > 4:  # a short id ("pa") is a word, not a secret
        found.add(res["id"])
    idents = list(res.get("identifier") or []) + ([res["groupIdentifier"]] if isinstance(res.get("groupIdentifier"), dict) else [])
    found |= {i["value"] for i in idents if i.get("value")}
    for name in res.get("name") or []:
        if isinstance(name, dict):
            found |= {n for n in [name.get("family"), *(name.get("given") or [])] if n}
    found |= {t["value"] for t in res.get("telecom") or [] if t.get("value")}
    if (text := (res.get("medicationCodeableConcept") or {}).get("text")) is not None:
        found.add(text)
    return found


def leaks(text: str, secrets: Iterable[str], asked: str = "") -> list[str]:
    """The secrets ``text`` shows (whole words: ``obs-a`` is not in ``obs-a-psy``), except what the
    request itself said (an answer may echo the question)."""
    return sorted(s for s in secrets if s not in asked and re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text))


def entry_refs(body: dict) -> list[str]:
    """Every resource an answer Bundle (or Parameters) carries, at any depth of nesting."""
    out = []
    for e in body.get("entry") or []:
        res = e.get("resource") or {}
        if "resourceType" in res and "id" in res:
            out.append(f"{res['resourceType']}/{res['id']}")
        if res.get("resourceType") == "Bundle":
            out += entry_refs(res)
        if isinstance(e.get("response"), dict) and isinstance(e["response"].get("outcome"), dict):
            out += entry_refs(e["response"]["outcome"])
    return out


def issue_code(resp) -> str | None:
    """The first issue code of an OperationOutcome answer (None for anything else)."""
    try:
        return resp.json()["issue"][0]["code"]
    except Exception:  # noqa: BLE001 - not an OperationOutcome (an HTML page, a Bundle)
        return None


@dataclass
class Findings:
    """Every failing case of one test, listed at the end (a test does not stop at the first)."""

    who: str
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, case: str, detail: object = "") -> bool:
        if not ok:
            self.problems.append(f"{case}: {detail}")
        return ok

    def assert_none(self) -> None:
        assert not self.problems, f"{len(self.problems)} failing case(s) for {self.who}:\n  " + "\n  ".join(self.problems)


@dataclass
class Arena:
    """The world, its adversaries and the tool checks (direct, unrestricted database reads)."""

    world: World
    contents: dict[str, dict] = field(default_factory=dict)

    @property
    def engine(self):
        return self.world.app.state.engine

    def client(self, adversary: Adversary | DemoUser | str, **headers):
        user = adversary.user if isinstance(adversary, Adversary) else adversary
        return self.world.client(user, **headers)

    def secrets(self, adversary: Adversary, *, linked: bool = False) -> set[str]:
        """What of the targets must not show; ``linked``: in an answer about patients' records."""
        found = set(adversary.extra_secrets) | (set(adversary.linked) if linked else set())
        for ref in adversary.targets:
            found |= _strings_of(self.contents[ref])
        return found - set(adversary.legit)

    async def load(self, refs: Iterable[str]) -> None:
        async with self.engine.connect() as conn:
            for ref in refs:
                t, i = ref.split("/")
                stored = await repository.current(conn, t, i)
                assert stored is not None and not stored.deleted, f"the scenario lacks {ref}"
                self.contents[ref] = orjson.loads(stored.content)

    async def row(self, ref: str) -> tuple | None:
        """(version, deleted) of one resource, as the database holds it."""
        t, i = ref.split("/")
        async with self.engine.connect() as conn:
            stored = await repository.current(conn, t, i)
        return (stored.version_id, stored.deleted) if stored else None

    async def snapshot(self) -> set[tuple]:
        """Every current row of every resource: a refused write must leave this exactly as it was."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(resource.c.res_type, resource.c.res_id, resource.c.version_id, resource.c.deleted))
            return set(rows.all())


async def build_arena(world: World) -> Arena:
    """The world plus ``EXTRA`` and Brahim's CIN, written as the server itself would (no caller)."""
    app = world.app
    s = app.state.security.settings
    opts = Options(s.base_url, s.default_page_size, s.max_page_size, s.max_bundle_entries, False)
    async with app.state.engine.connect() as conn:
        pb = orjson.loads((await repository.current(conn, "Patient", "pb")).content)
    if not any(i.get("value") == BB222 for i in pb.get("identifier") or []):
        pb["identifier"] = [*(pb.get("identifier") or []), {"system": CIN, "value": BB222}]
    pb.pop("meta", None)
    entries = [{"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in [pb, *EXTRA]]
    await transaction(app.state.engine, {"resourceType": "Bundle", "type": "transaction", "entry": entries}, opts)
    arena = Arena(world)
    await arena.load({ref for a in ADVERSARIES for ref in a.targets})
    return arena
