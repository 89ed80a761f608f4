"""The fund agent's journey: the CNSS review queue, a pended care sheet decided line by line, the
provider's appeal answered; another fund's queue and claims stay closed."""
from __future__ import annotations

from .conftest import entries, parameters


def _line(sequence: int, decision: str, reason: str | None = None, benefit: float | None = None) -> dict:
    parts = [{"name": "sequence", "valueInteger": sequence}, {"name": "decision", "valueCode": decision}]
    if reason:
        parts.append({"name": "reason", "valueCode": reason})
    if benefit is not None:
        parts.append({"name": "benefit", "valueMoney": {"value": benefit, "currency": "MAD"}})
    return {"name": "line", "part": parts}


def _decide(client, claim: str, note: str, *lines: dict):
    body = parameters(note=note)
    body["parameter"] += list(lines)
    return client.post(f"{claim}/$decide", json=body)


def test_cnss_agent_decides_a_pended_sheet_and_answers_the_appeal(live):
    agent, doctor = live.as_user("agent-cnss"), live.as_user("doctor")
    claim = live.story["agent-cnss"]["pended"]

    queue = agent.get("Claim/$review-queue", params={"fund": "Organization/cnss", "status": "open"})
    assert queue.status_code == 200, queue.text
    tasks = entries(queue.json(), "Task")
    assert any(t["focus"]["reference"] == claim for t in tasks)
    sheet = agent.get(claim)
    assert sheet.status_code == 200 and len(sheet.json()["item"]) == 2

    decision = _decide(agent, claim, "Une seule prothèse justifiée par le compte rendu",
                       _line(1, "accept"), _line(2, "reject", reason="not-in-basket"))
    assert decision.status_code == 200, decision.text
    answer = decision.json()
    assert answer["outcome"] in ("partial", "complete") and len(answer["item"]) == 2

    appeal = doctor.post(f"{claim}/$appeal", json={"resourceType": "Parameters", "parameter": [
        {"name": "reason", "valueString": "Prothèse bilatérale : les deux actes ont été réalisés"},
        {"name": "line", "valueInteger": 2}]})
    assert appeal.status_code == 201, appeal.text
    queue = entries(agent.get("Claim/$review-queue", params={"fund": "Organization/cnss"}).json(), "Task")
    assert any(t["focus"]["reference"] == claim for t in queue)
    revised = _decide(agent, claim, "Recours accepté au vu du compte rendu opératoire",
                      _line(2, "adjust", benefit=4000))
    assert revised.status_code == 200, revised.text
    assert revised.json()["id"] == answer["id"] and revised.json()["meta"]["versionId"] != answer["meta"]["versionId"]

    # Another fund's queue is not this agent's; nor are its care sheets.
    assert agent.get("Claim/$review-queue", params={"fund": "Organization/cnops"}).status_code == 403
    others = [c for user in ("agent-cnops", "agent-amo-tadamon")
              for c in entries(live.as_user(user).get("Claim", params={"_count": 1}).json(), "Claim")]
    assert others, "the demo day has care sheets of the other funds"
    assert agent.get(f"Claim/{others[0]['id']}").status_code == 404
