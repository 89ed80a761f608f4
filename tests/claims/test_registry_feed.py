"""The registry feed as a FHIR Bundle, and a fund's gateway speaking only for its own fund.

The RSU registry sends the same facts as the CSV feed as a Bundle (a threshold Observation, the
member's index Observation, the Coverage period): the ALD patient's cliff opens a transition.
A bad entry is pointed at by its FHIRPath and nothing is written.  A fund's gateway (a system
client of the fund) that sends another fund's coverage has the whole feed refused: nothing of
it is loaded, not even its own fund's rows.
"""
from __future__ import annotations

from sqlalchemy import select

from claims.tables import coverage_transition, registry_feed
from claims.uris import FUND, HOUSEHOLD, REGIME, RSU
from ehr.security.demo import SystemClient
from ehr.security.roles import Role
from ehr.security.scopes import ScopeSet
from ehr.store import repository
from ehr.store.db import read_connection
from tests.claims import builders as b
from tests.claims.test_appeals import secure_app, signing_key  # noqa: F401  (fixtures)
from tests.claims.test_coverage_cliff import ENDED, HEADER, REGISTRY, _count, _resources
from tests.security.world import seed_world

CNSS_GATEWAY = SystemClient("cnss-gateway", Role.INSURER, ScopeSet.parse("system/Organization.rs", strict=True),
                            fund="Organization/cnss")
PLAN = {"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}


def threshold(value: float) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": RSU, "code": "threshold"}]},
            "category": [{"coding": [{"system": REGIME, "code": "AMO-TADAMON"}]}],
            "effectivePeriod": {"start": "2020-01-01"}, "valueQuantity": {"value": value}}


def index(patient: dict, value: float, start: str) -> dict:
    return {"resourceType": "Observation", "status": "final", "code": {"coding": [{"system": RSU, "code": "index"}]},
            "subject": patient, "focus": [{"identifier": {"system": HOUSEHOLD, "value": "H-77"}}],
            "effectivePeriod": {"start": start}, "valueQuantity": {"value": value}}


def coverage(patient: dict, fund: str, regime: str, end: str | None = None) -> dict:
    return {"resourceType": "Coverage", "status": "active", "beneficiary": patient,
            "payor": [{"identifier": {"system": FUND, "value": fund}}],
            "class": [{"type": {"coding": [PLAN]}, "value": regime}],
            "period": {"start": "2020-01-01", **({"end": end} if end else {})}}


def bundle(*resources: dict) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


async def send(world, client: SystemClient, body: dict | str):
    token = world.issuer.issue_client_token(client).access_token
    if isinstance(body, str):
        async with world.client(None, Authorization=f"Bearer {token}", **{"Content-Type": "text/csv"}) as c:
            return await c.post("/$registry-feed", content=(HEADER + body).encode())
    async with world.client(None, Authorization=f"Bearer {token}") as c:
        return await c.post("/$registry-feed", json=body)


async def coverage_of(app, cov_id: str) -> dict:
    async with read_connection(app.state.engine) as conn:
        return (await repository.current(conn, "Coverage", cov_id)).resource()


async def test_a_bundle_feed_opens_the_ald_patients_transition(secure_app):
    world = await seed_world(secure_app, _resources())
    by_cin = {"identifier": {"system": "https://fhir.sijill.ma/sid/cin", "value": "AA111"}}
    resp = await send(world, REGISTRY, bundle(
        threshold(9.3264284), index({"reference": "Patient/pa"}, 9.61, b.days_ago(40).isoformat()),
        coverage(by_cin, "AMO-TADAMON", "AMO-TADAMON", ENDED.isoformat())))
    assert resp.status_code == 200, resp.text
    out = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in resp.json()["parameter"]}
    assert out["rows"] == 3 and out["patients"] == 1 and out["transitionsOpened"] == 1
    cov = await coverage_of(secure_app, "cov-t")  # the patient's existing Coverage, ended on the feed's date
    assert cov["period"]["end"] == ENDED.isoformat()
    async with read_connection(secure_app.state.engine) as conn:
        feed = (await conn.execute(select(registry_feed.c.format, registry_feed.c.sender))).one()
        (transition,) = (await conn.execute(select(coverage_transition))).all()
    assert feed == ("bundle", "rsu-registry")
    assert transition.patient_id == "pa" and transition.ald == 1 and transition.next_regime == "AMO-TNS"


async def test_a_bad_bundle_entry_is_pointed_at_and_nothing_is_written(secure_app):
    world = await seed_world(secure_app, _resources())
    resp = await send(world, REGISTRY, bundle(
        threshold(9.3), index({"reference": "Patient/pa"}, 9.6, "le premier mai"),
        {"resourceType": "Patient", "id": "x"}))
    assert resp.status_code == 422
    issues = resp.json()["issue"]
    assert {i["expression"][0] for i in issues} == {"Bundle.entry[1].resource", "Bundle.entry[2].resource"}
    assert any("début" in i["diagnostics"] for i in issues)
    resp = await send(world, REGISTRY, bundle(index({"reference": "Patient/nobody"}, 9.6, "2026-01-01")))
    assert resp.status_code == 422 and resp.json()["issue"][0]["expression"] == ["Bundle.entry[0].resource"]
    assert await _count(secure_app, registry_feed) == 0 and await _count(secure_app, coverage_transition) == 0


async def test_a_fund_gateway_sending_another_funds_rows_has_the_whole_feed_refused(secure_app):
    world = await seed_world(secure_app, _resources())
    pa = {"reference": "Patient/pa"}
    before = await coverage_of(secure_app, "cov-t")
    for body in (bundle(coverage(pa, "CNSS", "AMO-SAL"), coverage(pa, "AMO-TADAMON", "AMO-TADAMON", ENDED.isoformat())),
                 "couverture;;Patient/pa;AMO-SAL;CNSS;;2020-01-01;\n"
                 f"couverture;;Patient/pa;AMO-TADAMON;AMO-TADAMON;;2020-01-01;{ENDED}\n"):
        resp = await send(world, CNSS_GATEWAY, body)
        assert resp.status_code == 403, resp.text
        (issue,) = resp.json()["issue"]
        assert issue["code"] == "forbidden" and "AMO-TADAMON" in issue["diagnostics"]
        where = "Bundle.entry[1]" if isinstance(body, dict) else "ligne 3"
        assert where in issue["diagnostics"]
    # nothing loaded: not the other fund's row, nor the gateway's own fund's
    assert await _count(secure_app, registry_feed) == 0
    assert await coverage_of(secure_app, "cov-t") == before
    resp = await send(world, CNSS_GATEWAY, bundle(coverage(pa, "CNSS", "AMO-SAL")))
    assert resp.status_code == 200, resp.text  # its own fund's rows alone are loaded
    assert await _count(secure_app, registry_feed) == 1
