"""The counter agent's journey: a walk-in patient served with the proof of presence, their
decision letter, payment notice and "who looked at my file" printed; nothing without it."""
from __future__ import annotations

from .conftest import CIN, parameters


def test_counter_agent_prints_a_walk_in_patients_letters(live):
    agent = live.as_user("paper-agent")
    walk_in = live.story["paper-agent"]
    patient, letter = walk_in["patient"], f"{walk_in['decision']}/$letter"
    agent.headers["Accept"] = "text/html"  # letters and reports are printed
    proof = {"identifier": {"system": CIN, "value": walk_in["cin"]}}

    assert agent.get(letter).status_code == 404  # not without the patient in front of the agent
    assert agent.get(f"{patient}/$access-report").status_code == 404
    fhir = {"Accept": "application/fhir+json"}  # $assist answers a Parameters
    wrong = agent.post(f"{patient}/$assist", json=parameters(**proof, birthDate="1901-01-01"), headers=fhir)
    assert wrong.status_code == 404

    served = agent.post(f"{patient}/$assist", json=parameters(**proof, birthDate=walk_in["birthDate"]), headers=fhir)
    assert served.status_code == 200, served.text
    printed = agent.get(letter)
    assert printed.status_code == 200 and printed.headers["content-type"].startswith("text/html")
    assert walk_in["payment"], "the demo paid the walk-in's sheet"
    notice = agent.get(f"{walk_in['payment']}/$letter")
    assert notice.status_code == 200, notice.text
    report = agent.get(f"{patient}/$access-report")
    assert report.status_code == 200, report.text
