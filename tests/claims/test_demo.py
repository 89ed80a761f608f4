"""The demo's day of care sheets, on top of the demo population."""
from __future__ import annotations

from sqlalchemy import func, select

from claims.demo import load_claims_day
from claims.tables import claim_job, claim_ledger, claim_review_task
from ehr.demo.generator import patient_bundles, reference_bundle
from ehr.interactions.transaction import Options, transaction


def _some_providers(seed: int) -> dict:
    """The funds and a few providers of each kind from the demo's reference population (the
    whole country's facilities take long to load and add nothing to these checks)."""
    bundle = reference_bundle(seed)
    kept, per_kind = [], {}
    for entry in bundle["entry"]:
        res = entry["resource"]
        kinds = [c.get("code") for t in res.get("type") or [] for c in t.get("coding") or []]
        key = res["resourceType"] + ":" + (kinds[-1] if kinds else "")
        if key.endswith((":fund", ":mutuelle")) or per_kind.get(key, 0) < 6:
            per_kind[key] = per_kind.get(key, 0) + 1
            kept.append(entry)
    return {**bundle, "entry": kept}


async def test_a_day_of_care_sheets_is_submitted_and_decided(app, settings):
    engine = app.state.engine
    opts = Options(settings.base_url, 20, 1000, 1_000_000, False)
    await transaction(engine, _some_providers(1), opts)
    for bundle in patient_bundles(12, 1):
        await transaction(engine, bundle, opts)
    summary = await load_claims_day(engine, settings, sheets=30, seed=3)
    assert summary.refused == 0 and summary.submitted >= 30
    assert {"gp", "pharmacy"} <= set(summary.by_kind)
    async with engine.connect() as conn:
        rows = (await conn.execute(select(claim_ledger.c.status, func.count()).group_by(claim_ledger.c.status))).all()
        pended = (await conn.execute(select(func.count()).select_from(claim_review_task))).scalar_one()
        jobs = (await conn.execute(select(func.count()).select_from(claim_job))).scalar_one()
    statuses = dict(rows)
    assert jobs == 0 and statuses.get("queued", 0) == 0
    assert statuses["decided"] >= summary.submitted - pended
    assert statuses.get("in-review", 0) == pended
    # the same day again is deterministic and idempotent: same sheet numbers, same answers
    again = await load_claims_day(engine, settings, sheets=30, seed=3)
    async with engine.connect() as conn:
        total = (await conn.execute(select(func.count()).select_from(claim_ledger))).scalar_one()
    assert again.refused == 0 and total == sum(statuses.values())
