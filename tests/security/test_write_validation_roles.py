"""A doctor's write is validated like any other (issue 12): an Observation with a decimal sent
as a string, or a narrative carrying a script, is refused at the element and not stored; the
same Observation written properly is stored."""
from __future__ import annotations

OBSERVATION = {
    "resourceType": "Observation", "status": "final", "code": {"text": "Poids"},
    "subject": {"reference": "Patient/pa"}, "performer": [{"reference": "Practitioner/d1"}],
}
SCRIPT = {"status": "generated", "div": '<div xmlns="http://www.w3.org/1999/xhtml">72 kg<script>fetch("//x")</script></div>'}


async def test_a_doctors_invalid_observation_is_refused_and_a_valid_one_stored(world):
    async with world.client("D1") as doctor:
        before = (await doctor.get("/Observation", params={"subject": "Patient/pa", "_summary": "count"})).json()["total"]
        for bad, where in (({"valueQuantity": {"value": "72", "unit": "kg"}}, "Observation.value.ofType(Quantity).value"),
                           ({"text": SCRIPT}, "Observation.text.div")):
            r = await doctor.post("/Observation", json={**OBSERVATION, **bad})
            assert r.status_code == 422, r.text
            assert where in [e for i in r.json()["issue"] for e in i.get("expression", [])]
        after = (await doctor.get("/Observation", params={"subject": "Patient/pa", "_summary": "count"})).json()["total"]
        assert after == before
        ok = await doctor.post("/Observation", json={**OBSERVATION, "valueQuantity": {"value": 72, "unit": "kg"}})
        assert ok.status_code == 201, ok.text
