"""The indirect ways in: batch and transaction entries (reads, searches, conditional references),
Bulk Data ``$export`` (system and Patient level), and the claim attachment (DocumentReference and
its Binary, also asked for as raw bytes).  The same answers as the direct ways: 404 (403 where the
type is never read) per entry, nothing of the hidden resource anywhere, nothing written.
"""
from __future__ import annotations

import httpx
import orjson
import pytest

from ehr.security.demo import SystemClient
from ehr.security.roles import Role
from ehr.security.scopes import ScopeSet
from tests.conftest import BASE
from tests.interop.test_binary_bulk_export import ASYNC, finished, ndjson

from .scenario import BY_NAME, MISSING, NAMES, Adversary, Arena, Findings, entry_refs, leaks

# Who may not see Amina's claim attachment (everyone without her record or CNSS's business).
ATTACHMENT_HIDDEN_FROM = ("patient", "doctor-unrelated", "doctor-denied", "pharmacist", "insurer-other-fund", "paper-agent", "admin")
CNSS_BUSINESS = {"Claim/claim-a", "ClaimResponse/cr-a", "Coverage/cov-a", "Patient/pa", "DocumentReference/doc-a", "Binary/bin-a",
                 "PaymentReconciliation/pr-cnss", "ExplanationOfBenefit/eob-a"}


def _gets(adv: Adversary) -> list[tuple[str, str]]:
    """(url, expected status) of the GET entries aimed at the adversary's targets."""
    out = []
    for ref in adv.targets:
        t, i = ref.split("/")
        out.append((ref, str(adv.expected(t))))
        out.append((f"{t}?_id={i}&_revinclude=*", "200" if adv.may(t, "s") else "403"))
    return out


def _bundle(kind: str, entries: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


@pytest.mark.parametrize("name", NAMES)
async def test_batch_and_transaction_reads(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets, targets = arena.secrets(adv, linked=True), set(adv.targets)
    gets = _gets(adv)
    entries = [{"request": {"method": "GET", "url": url}} for url, _ in gets]
    async with arena.client(adv) as c:
        r = await c.post("", json=_bundle("batch", entries))
        if f.check(r.status_code == 200, "batch of GETs", r.status_code):
            answers = r.json().get("entry") or []
            for (url, want), e in zip(gets, answers):
                got = e.get("response", {}).get("status", "")
                f.check(got.startswith(want), f"batch GET {url}", f"{got}, expected {want}")
            f.check(not (shown := targets & set(entry_refs(r.json()))), "batch of GETs", f"carries {sorted(shown)}")
        f.check(not (found := leaks(r.text, secrets, orjson.dumps(entries).decode())), "batch of GETs", f"answer shows {found}")
        for url, want in gets:
            r = await c.post("", json=_bundle("transaction", [{"request": {"method": "GET", "url": url}}]))
            case = f"transaction GET {url}"
            f.check(not (found := leaks(r.text, secrets, url)), case, f"answer shows {found}")
            if r.status_code == 200:
                got = (r.json().get("entry") or [{}])[0].get("response", {}).get("status", "")
                f.check(got.startswith(want) and not targets & set(entry_refs(r.json())), case, f"{got}, expected {want}")
            else:
                f.check(str(r.status_code) == want, case, f"{r.status_code}, expected {want}")
    f.assert_none()


def _referring(adv: Adversary, reference: str) -> dict:
    """A resource the adversary might write, carrying ``reference`` (where any reference may go)."""
    if adv.role in (Role.PATIENT, Role.INSURER):
        sender = "Organization/cnops" if adv.role is Role.INSURER else f"Patient/{adv.user}"
        return {"resourceType": "Communication", "status": "completed", "sender": {"reference": sender},
                "about": [{"reference": reference}], "payload": [{"contentString": "?"}]}
    obs = {"resourceType": "Observation", "status": "final", "code": {"text": "note"}, "focus": [{"reference": reference}]}
    if adv.sees:
        obs["subject"] = {"reference": f"Patient/{adv.sees[0]}"}
    return obs


@pytest.mark.parametrize("name", NAMES)
async def test_conditional_references_do_not_resolve_to_the_invisible(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for ref in adv.targets:
            t, i = ref.split("/")
            answers = []
            for cond in (f"{t}?_id={i}", f"{t}?_id={MISSING}"):
                res = _referring(adv, cond)
                before = await arena.snapshot()
                r = await c.post("", json=_bundle("transaction", [{"fullUrl": "urn:uuid:1", "resource": res,
                                                                   "request": {"method": "POST", "url": res["resourceType"]}}]))
                answers.append(r.status_code)
                f.check(await arena.snapshot() == before or cond.endswith(MISSING), f"transaction referring to {cond}",
                        f"written: {r.status_code}")
                f.check(not (found := leaks(r.text, secrets, cond)), f"transaction referring to {cond}", f"answer shows {found}")
            f.check(answers[0] == answers[1] and answers[0] >= 400, f"transaction referring to {t}?_id={i}",
                    f"{answers[0]}, but referring to nothing gets {answers[1]}")
    f.assert_none()


@pytest.mark.parametrize("name", ATTACHMENT_HIDDEN_FROM)
async def test_the_claim_attachment(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True) | {"doc-a", "bin-a", "JVBERi0="}
    async with arena.client(adv) as c:
        for path, accept in (("/DocumentReference/doc-a", "application/fhir+json"), ("/Binary/bin-a", "application/fhir+json"),
                             ("/Binary/bin-a", "application/pdf"), ("/Binary/bin-a", "*/*"),
                             ("/Binary/bin-a/_history/1", "application/pdf")):
            t = path.split("/")[1]
            r = await c.get(path, headers={"Accept": accept})
            f.check(r.status_code == adv.expected(t), f"GET {path} ({accept})", f"{r.status_code}, expected {adv.expected(t)}")
            f.check(not (found := leaks(r.text, secrets - {"doc-a" if "doc-a" in path else "bin-a"}, path)), f"GET {path}", f"answer shows {found}")
        for query in ("DocumentReference?related=Claim/claim-a&_include=*", "DocumentReference?subject=Patient/pa",
                      "Binary?_id=bin-a", "Claim?_id=claim-a&_revinclude=DocumentReference:related"):
            path, _, qs = query.partition("?")
            r = await c.get(f"/{path}?{qs}")
            f.check(r.status_code in (200, 403), query, r.status_code)
            if r.status_code == 200:
                f.check(not {"DocumentReference/doc-a", "Binary/bin-a"} & set(entry_refs(r.json())), query, entry_refs(r.json()))
            f.check(not (found := leaks(r.text, secrets, query)), query, f"answer shows {found}")
    f.assert_none()


def _system(arena: Arena, client_id: str, fund: str) -> httpx.AsyncClient:
    token = arena.world.issuer.issue_client_token(SystemClient(client_id, Role.INSURER, ScopeSet.parse("system/*.rs"), fund=fund)).access_token
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=arena.world.app), base_url=BASE,
                             headers={"Authorization": f"Bearer {token}", "Accept": "application/fhir+json"})


async def _exported(f: Findings, c: httpx.AsyncClient, case: str, path: str) -> str:
    """The whole export (every file) as text, or "" when it is refused."""
    kick = await c.get(path, headers=ASYNC)
    if kick.status_code != 202:
        f.check(kick.status_code == 403, case, f"{kick.status_code} {kick.text[:160]}")
        return ""
    done = await finished(c, kick.headers["content-location"])
    if not f.check(done.status_code == 200, case, f"{done.status_code} {done.text[:160]}"):
        return ""
    rows = [r for o in done.json()["output"] for r in await ndjson(c, o["url"])]
    return "\n".join(orjson.dumps(r).decode() for r in rows)


async def test_exports_carry_nothing_hidden(arena: Arena):
    f = Findings("$export")
    for name in NAMES:  # people (the admin: reference data only)
        adv = BY_NAME[name]
        async with arena.client(adv) as c:
            for path in ("/$export", "/Patient/$export"):
                text = await _exported(f, c, f"{name} {path}", path)
                if adv.role is not Role.ADMIN:
                    f.check(text == "", f"{name} {path}", "a person's token exported")
                f.check(not (found := leaks(text, arena.secrets(adv, linked=True))), f"{name} {path}", f"export shows {found}")
    async with _system(arena, "cnops-gateway", "Organization/cnops") as cnops:  # another fund's gateway
        for path in ("/$export", "/Patient/$export", "/$export?_type=Claim,ClaimResponse,Coverage,Patient,PaymentReconciliation"):
            text = await _exported(f, cnops, f"CNOPS gateway {path}", path)
            rows = {f"{r['resourceType']}/{r['id']}" for r in map(orjson.loads, filter(None, text.splitlines()))}
            f.check(not rows & CNSS_BUSINESS, f"CNOPS gateway {path}", f"exports {sorted(rows & CNSS_BUSINESS)}")
            f.check(not (found := leaks(text, arena.secrets(BY_NAME["insurer-other-fund"], linked=True))), f"CNOPS gateway {path}", found)
    f.assert_none()
