"""A batch Bundle of care sheets: one transaction, one answer per sheet, a cost that does not grow
with the number of sheets (a fund gateway or a facility sends its day in batches)."""
from __future__ import annotations

import logging

from sqlalchemy import event, func, select

from claims.tables import claim_job, claim_ledger
from claims.worker import Worker
from tests.claims import builders as b


async def _world(client):
    fund = await b.fund(client, "CNSS")
    doc = await b.practitioner(client)
    pat = await b.patient(client)
    cov = await b.coverage(client, pat["id"], fund["id"])
    return doc, pat, cov


def _batch(*claims: dict) -> dict:
    return {"resourceType": "Bundle", "type": "batch",
            "entry": [{"resource": c, "request": {"method": "POST", "url": "Claim"}} for c in claims]}


def _sheet(pat, cov, doc, amount=80.0, number=None) -> dict:
    return b.claim(pat["id"], cov["id"], [b.act("C", amount, b.days_ago(1))], provider=b.provider_ref(doc), number=number)


async def _count(app, table) -> int:
    async with app.state.engine.connect() as conn:
        return (await conn.execute(select(func.count()).select_from(table))).scalar_one()


async def test_each_sheet_of_a_batch_gets_its_own_answer(client, app, settings):
    doc, pat, cov = await _world(client)
    already = _sheet(pat, cov, doc, number="FSE-B-1")
    assert (await client.post("/Claim", json=already)).status_code == 201
    reused_number = _sheet(pat, cov, doc, amount=95.0, number="FSE-B-1")  # same number, other lines
    bad = _sheet(pat, cov, doc, number="FSE-B-2")
    bad["patient"] = {"reference": "Patient/nobody"}
    twice = _sheet(pat, cov, doc, number="FSE-B-3")
    fresh = [_sheet(pat, cov, doc, number=f"FSE-B-{n}") for n in range(10, 15)]

    resp = await client.post("", json=_batch(already, reused_number, bad, twice, twice, *fresh))
    assert resp.status_code == 200, resp.text
    out = resp.json()["entry"]
    status = [e["response"]["status"].split()[0] for e in out]
    assert status == ["200", "409", "422", "201", "200"] + ["201"] * 5
    # each outcome names its entry in the Bundle (issue 12), not only the element of a Claim
    assert out[2]["response"]["outcome"]["issue"][0]["expression"] == ["Bundle.entry[2].resource.patient"]
    assert out[1]["response"]["outcome"]["issue"][0]["code"] == "duplicate"
    assert out[1]["response"]["outcome"]["issue"][0]["expression"][0].startswith("Bundle.entry[1]")
    # the sheet sent twice in one batch is one claim, both entries name its ClaimResponse
    assert out[3]["fullUrl"] == out[4]["fullUrl"] and out[3]["fullUrl"].split("/")[-2] == "ClaimResponse"
    assert await _count(app, claim_ledger) == 1 + 1 + 5
    assert await _count(app, claim_job) == 7

    worker = Worker(app.state.engine, base_url=settings.base_url, name="bulk-test")
    while await worker.run_once():
        pass
    async with app.state.engine.connect() as conn:
        statuses = (await conn.execute(select(claim_ledger.c.status))).scalars().all()
    assert statuses and set(statuses) == {"decided"}
    decided = (await client.get(out[5]["fullUrl"].split("/fhir")[1])).json()
    assert decided["outcome"] == "complete"


async def test_a_batch_costs_the_same_statements_whatever_its_size(client, app):
    doc, pat, cov = await _world(client)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if "audit_chain" not in statement and "audit_log" not in statement:  # the background sealer's, not the batch's
            statements.append(statement)

    engine = app.state.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        sizes = {}
        for n, prefix in ((5, "S"), (40, "L")):
            statements.clear()
            batch = _batch(*(_sheet(pat, cov, doc, number=f"FSE-{prefix}-{i}") for i in range(n)))
            resp = await client.post("", json=batch)
            assert resp.status_code == 200
            assert all(e["response"]["status"].startswith("201") for e in resp.json()["entry"])
            sizes[n] = len(statements)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert sizes[40] == sizes[5], sizes


async def test_a_batch_that_cannot_be_written_together_falls_back_to_one_by_one(client, app, caplog):
    doc, pat, cov = await _world(client)
    ok = _sheet(pat, cov, doc, number="FSE-F-1")
    odd = _sheet(pat, cov, doc, number="FSE-F-2")
    odd["meta"] = {"profile": ["https://fhir.sijill.ma/StructureDefinition/sijill-claim-care-sheet"]}
    odd["item"][0]["productOrService"]["coding"][0]["code"] = "NOT-AN-ACT"
    with caplog.at_level(logging.INFO, logger="sijill.bundle"):
        resp = await client.post("", json=_batch(ok, odd))
    assert resp.status_code == 200
    assert "one by one" in caplog.text
    status = [e["response"]["status"].split()[0] for e in resp.json()["entry"]]
    assert status[0] == "201" and status[1] in ("400", "422")
    assert await _count(app, claim_ledger) == 1
