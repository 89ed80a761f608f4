"""A patient asks for her record over a period: ``Patient/$everything?start=&end=`` with her own
token selects care by its date, and pulls in only who and what that care names."""
from datetime import datetime, timedelta, timezone


async def _everything(world, user: str, patient: str, **params) -> set[str]:
    async with world.client(user) as c:
        r = await c.get(f"/Patient/{patient}/$everything", params=params)
    assert r.status_code == 200, r.text
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in r.json().get("entry", [])}


async def test_a_patient_gets_her_recent_care_and_who_gave_it(world):
    month_ago = (datetime.now(timezone.utc) - timedelta(days=30)).date().isoformat()
    recent = await _everything(world, "pa", "pa", start=month_ago)
    assert {"Patient/pa", "Encounter/enc-a", "CareTeam/ct-a", "Practitioner/d1", "Practitioner/d3"} <= recent
    assert "Coverage/cov-a" in recent  # no care date: not restricted
    assert not {"Claim/claim-a", "ClaimResponse/cr-a"} & recent  # created in January 2025
    assert not any(ref.endswith(("/pb", "/pc")) for ref in recent)


async def test_old_care_comes_without_those_named_only_by_recent_care(world):
    january = await _everything(world, "pa", "pa", start="2025-01-01", end="2025-01-31")
    assert {"Patient/pa", "Claim/claim-a", "ClaimResponse/cr-a", "Organization/cnss", "Organization/ph-org"} <= january
    assert not {"Encounter/enc-a", "CareTeam/ct-a", "Practitioner/d1", "Practitioner/d3"} & january
    assert await _everything(world, "pa", "pa", end="1999") == {"Patient/pa", "Coverage/cov-a", "Organization/cnss", "RelatedPerson/rp-c"}


async def test_the_period_opens_nothing_the_caller_may_not_see(world):
    async with world.client("pa") as amina, world.client("D4") as stranger:
        assert (await amina.get("/Patient/pb/$everything", params={"start": "2000"})).status_code == 404
        assert (await stranger.get("/Patient/pa/$everything", params={"start": "2000"})).status_code == 404
