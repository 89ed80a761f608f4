"""Writing the demo's story (``ehr.demo.story``) once, and the summary ``sijill demo`` prints:
which patient, prescription and care sheet each demo user can act on."""
from __future__ import annotations

from datetime import timedelta

import orjson
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.demo import story
from ehr.demo.rng import moment
from ehr.interactions.transaction import Options, transaction
from ehr.search.normalize import normalize
from ehr.settings import Settings
from ehr.store import repository
from ehr.store.db import read_connection, write_transaction
from ehr.store.schema import resource

NAMESAKES = 2  # patients named Mohamed the demo doctor follows: the README's name search finds them


async def _patients(engine: AsyncEngine) -> list[dict]:
    async with read_connection(engine) as conn:
        rows = await conn.execute(select(resource.c.content).where(resource.c.res_type == "Patient",
                                                                   resource.c.deleted.is_(False)))
        return [orjson.loads(c) for (c,) in rows]


async def walk_in_ids(engine: AsyncEngine) -> frozenset[str]:
    """The patients the demo keeps as walk-ins: strangers to the demo doctor and the counter."""
    walk_ins = story.pick_walk_ins(await _patients(engine))
    return frozenset({walk_ins.doctor["id"], walk_ins.counter["id"]}) if walk_ins else frozenset()


def _doctor_patients(patients: list[dict], walk_ins: story.WalkIns | None) -> list[str]:
    """The first generated patients, and a few named Mohamed (never a walk-in)."""
    generated = sorted((p for p in patients if p["id"] != story.DEMO_PATIENT), key=lambda p: story.index_of(p["id"]))
    strangers = {walk_ins.doctor["id"], walk_ins.counter["id"]} if walk_ins else set()
    named = [p["id"] for p in generated if p["id"] not in strangers and any(
        normalize(g).startswith("mohamed") for n in p.get("name", []) for g in n.get("given", []))]
    return [p["id"] for p in generated[: story.DOCTOR_PATIENTS]] + named[:NAMESAKES]


def _doctor_visits(patient_ids: list[str], today) -> list[dict]:
    """Yesterday's surgery: a care relationship counts once its visit has started, so visits
    dated today would open nothing until the morning's hour came (a demo loaded at night)."""
    day = today - timedelta(days=1)
    return [{
        "resourceType": "Encounter", "id": f"demo-doctor-visit-{pid}", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
        "participant": [{"individual": {"reference": f"Practitioner/{story.DEMO_DOCTOR}"}}],
        "period": {"start": moment(day, 9 * 60 + 2 * n), "end": moment(day, 9 * 60 + 2 * n + 20)},
    } for n, pid in enumerate(patient_ids)]


def _transaction(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}} for r in resources]}


async def tell_story(engine: AsyncEngine, settings: Settings, opts: Options, seed: int) -> bool:
    """Write the story unless it is there (False then): demo-patient's file, the demo doctor's
    patients, the story's care sheets decided and paid, the doctor's reads in the trail."""
    from claims.caresheet import today as claims_today
    from claims.demo import claims_world
    from claims.demo_story import send_story_sheets
    from claims.payment import pay_day
    from claims.settings import get_claims_settings
    from claims.worker import Worker
    from ehr.security.audit import append

    async with read_connection(engine) as conn:
        if await repository.current(conn, *story.MARKER) is not None:
            return False
    tz = get_claims_settings().timezone
    today = claims_today(tz)
    patients = await _patients(engine)
    walk_ins = story.pick_walk_ins(patients)
    chart = story.DemoPatientChart(seed, today)
    await transaction(engine, _transaction(chart.build() + _doctor_visits(_doctor_patients(patients, walk_ins), today)), opts)
    world = await claims_world(engine, settings.base_url, today)  # grants demo-patient's ALD exemption too
    if world is not None and walk_ins is not None:
        cnss = [pid for pid, cov in sorted(world.population.coverage.items())
                if pid not in (story.DEMO_PATIENT, walk_ins.doctor["id"], walk_ins.counter["id"])
                and any(p.get("reference") == "Organization/cnss" for p in cov.get("payor", []))]
        await send_story_sheets(
            engine, settings.base_url, world, today, patient=story.DEMO_PATIENT, coverage=chart.coverage()["id"],
            visits=(story.VISITS[2][0], story.VISITS[3][0]), pended_patient=(cnss or [story.DEMO_PATIENT])[0],
            counter_patient=walk_ins.counter["id"])
        worker = Worker(engine, base_url=settings.base_url, name="demo")
        while await worker.run_once():
            pass
        await pay_day(engine, today, base_url=settings.base_url, tz=tz)
    async with write_transaction(engine) as conn:
        await append(conn, story.doctor_consultations(today, settings.effective_dev_issuer_url()))
    return True


async def summary(engine: AsyncEngine) -> dict:
    """Who can try what: per demo user, the ids they act on (``sijill demo --show``)."""
    from claims.demo_story import COUNTER, PATIENT_SHEETS, PENDED, story_claims

    walk_ins = story.pick_walk_ins(await _patients(engine))
    sheets = await story_claims(engine)
    async with read_connection(engine) as conn:
        rx = await repository.current(conn, "MedicationRequest", story.CURRENT_PRESCRIPTION)
    out: dict = {
        "patient": {"patient": f"Patient/{story.DEMO_PATIENT}",
                    "claims": [f"Claim/{s.claim_id}" for n, s in sorted(sheets.items()) if n in PATIENT_SHEETS]},
        "doctor": {"patient": f"Patient/{story.DEMO_PATIENT}"},
        "pharmacist": {"prescription": ((rx.resource().get("groupIdentifier") or {}).get("value") if rx else None)},
    }
    if walk_ins:
        out["doctor"]["walk_in"] = {"cin": story.cin_of(walk_ins.doctor), "birthDate": walk_ins.doctor["birthDate"]}
    if pended := sheets.get(PENDED):
        out["agent-cnss"] = {"pended": f"Claim/{pended.claim_id}", "status": pended.status}
    if walk_ins and (letter := sheets.get(COUNTER)):
        out["paper-agent"] = {
            "patient": f"Patient/{walk_ins.counter['id']}", "cin": story.cin_of(walk_ins.counter),
            "birthDate": walk_ins.counter["birthDate"], "decision": f"ClaimResponse/{letter.response_id}",
            "payment": f"PaymentReconciliation/{letter.reconciliation_id}" if letter.reconciliation_id else None,
        }
    return out


def print_summary(found: dict, console: Console) -> None:
    table = Table(title="Try it: what each demo user acts on (sijill token --user <user>)")
    table.add_column("user")
    table.add_column("acts on")
    table.add_column("ids", overflow="fold")  # never cut: they are to be copied
    table.add_row("patient", "their file, care sheets, reimbursements, who saw it",
                  ", ".join([found["patient"]["patient"], *found["patient"]["claims"]]))
    walk_in = found["doctor"].get("walk_in")
    table.add_row("doctor", "their patients; a walk-in (Patient/$match, then $start-care)",
                  found["doctor"]["patient"] + (f"; walk-in CIN {walk_in['cin']} born {walk_in['birthDate']}" if walk_in else ""))
    table.add_row("pharmacist", "the prescription handed over (group-identifier=…|number)",
                  found["pharmacist"]["prescription"] or "(not numbered)")
    if cnss := found.get("agent-cnss"):
        table.add_row("agent-cnss", "the review queue (Claim/$review-queue?fund=Organization/cnss), $decide",
                      f"{cnss['pended']} ({cnss['status']})")
    if paper := found.get("paper-agent"):
        table.add_row("paper-agent", "serves a walk-in ($assist), prints letters and the access report",
                      ", ".join(filter(None, (f"{paper['patient']} (CIN {paper['cin']} born {paper['birthDate']})",
                                              paper["decision"], paper["payment"]))))
    console.print(table)
