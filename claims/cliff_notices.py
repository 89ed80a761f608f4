"""Who is told of a coverage cliff, and how: notification ``Communication``s of the issue-17 shape.

Event ``coverage-ending`` when a feed ends a coverage on the threshold (the patient, each
treating doctor — the practitioners of the patient's Encounters, CareTeams and EpisodesOfCare
that are not void — and the fund, each addressed their own Communication), ``ald-transition``
when the worker reminds the patient and the fund that an ALD transition is about to end.
The patient's notice goes through ``claims.messaging.notices.notify`` (delivered by SMS or
e-mail, then completed); the doctors' and the fund's are written here, ``in-progress``.
No clinical detail: dates, regimes and what to do, never the illness.
"""
from __future__ import annotations

import uuid
from datetime import date, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from claims.clock import now_us, to_instant
from claims.lookups import patient_records
from claims.messaging.notices import notify
from claims.settings import ClaimsSettings
from claims.tables import coverage_transition
from claims.transition import REGIME_AR, REGIME_FR
from claims.uris import NOTIFICATION
from ehr.interactions.context import Context, store_many
from ehr.store.db import write_transaction
from ehr.store.repository import NewVersion

_VOID = {"planned", "cancelled", "entered-in-error", "proposed", "inactive", "waitlist"}


async def treating_doctors(conn, patient_id: str) -> list[str]:
    """Practitioners (and their roles) in a care relationship with the patient."""
    records = (await patient_records(conn, [patient_id], ["Encounter", "CareTeam", "EpisodeOfCare"]))[patient_id]
    refs: set[str] = set()
    for r in records:
        if r.get("status") in _VOID:
            continue
        people = [p.get("individual") for p in r.get("participant") or []] if r["resourceType"] == "Encounter" else \
            [p.get("member") for p in r.get("participant") or []] if r["resourceType"] == "CareTeam" else [r.get("careManager")]
        refs |= {p["reference"] for p in people if isinstance(p, dict) and str(p.get("reference", "")).startswith("Practitioner")}
    return sorted(refs)


def communication(patient_id: str, recipient: str, event: str, about: str, fr: str, ar: str) -> dict:
    return {
        "resourceType": "Communication",
        "status": "in-progress",
        "category": [{"coding": [{"system": NOTIFICATION, "code": event}]}],
        "subject": {"reference": f"Patient/{patient_id}"},
        "recipient": [{"reference": recipient}],
        "about": [{"reference": about}],
        "payload": [{"contentString": fr}, {"contentString": ar}],
    }


def ending_texts(ends_on: date, next_regime: str | None, until: date | None) -> tuple[str, str]:
    nxt_fr = f" Inscrivez-vous à : {REGIME_FR.get(next_regime, next_regime)}." if next_regime else ""
    nxt_ar = f" سجلوا في: {REGIME_AR.get(next_regime, next_regime)}." if next_regime else ""
    ald_fr = f" Vos soins de longue durée restent couverts jusqu'au {until.isoformat()}." if until else ""
    ald_ar = f" تبقى علاجاتكم طويلة الأمد مغطاة إلى غاية {until.isoformat()}." if until else ""
    return (f"Votre couverture AMO prend fin le {ends_on.isoformat()} (indice RSU au-dessus du seuil).{ald_fr}{nxt_fr}",
            f"تنتهي تغطيتكم الصحية بتاريخ {ends_on.isoformat()} (مؤشر السجل الاجتماعي فوق العتبة).{ald_ar}{nxt_ar}")


async def notify_ending(ctx: Context, patient_id: str, coverage_id: str, fund_ref: str, ends_on: date,
                        next_regime: str | None, until: date | None) -> int:
    """The patient, their treating doctors and the fund, each told ahead of the end date."""
    fr, ar = ending_texts(ends_on, next_regime, until)
    about = f"Coverage/{coverage_id}"
    # The patient through the messaging front door (SMS/e-mail, the catalogue's short text, once
    # per end date); the doctors and the fund read theirs in the server.
    await notify(ctx, patient_id, "coverage-ending", about, {"regime": "AMO", "date": ends_on.strftime("%d/%m/%Y"),
                                                             "occurrence": ends_on.isoformat()})
    recipients = [*await treating_doctors(ctx.conn, patient_id), fund_ref]
    await store_many(ctx, [NewVersion("Communication", str(uuid.uuid4()),
                                      communication(patient_id, r, "coverage-ending", about, fr, ar), "POST", None)
                           for r in recipients])
    return len(recipients) + 1


async def remind_due(engine: AsyncEngine, settings: ClaimsSettings, base_url: str, today: date) -> int:
    """Before an ALD transition ends, the patient and the fund are told again (once): nobody's
    long-term treatment lapses silently.  Run by ``sijill worker`` when idle."""
    t = coverage_transition.c
    horizon = (today + timedelta(days=settings.transition_renotify_days)).isoformat()
    async with write_transaction(engine) as conn:
        due = (await conn.execute(select(t.id, t.patient_id, t.coverage_id, t.fund_ref, t.transition_until, t.next_regime).where(
            t.closed_at.is_(None), t.reminded_at.is_(None), t.ald == 1, t.transition_until <= horizon,
            t.transition_until >= today.isoformat()).limit(500))).all()
        if not due:
            return 0
        items = []
        for row in due:
            nxt_fr = f" Inscrivez-vous à : {REGIME_FR.get(row.next_regime, row.next_regime)}." if row.next_regime else ""
            fr = f"Rappel : la période de transition de vos soins de longue durée prend fin le {row.transition_until}.{nxt_fr}"
            ar = f"تذكير: تنتهي الفترة الانتقالية لعلاجاتكم طويلة الأمد بتاريخ {row.transition_until}."
            items.append(NewVersion("Communication", str(uuid.uuid4()), communication(
                row.patient_id, row.fund_ref, "ald-transition", f"Coverage/{row.coverage_id}", fr, ar), "POST", None))
        ctx = Context(conn, base_url)
        for row in due:  # the patient through the messaging front door (SMS/e-mail)
            until = date.fromisoformat(row.transition_until).strftime("%d/%m/%Y")
            await notify(ctx, row.patient_id, "ald-transition", f"Coverage/{row.coverage_id}", {"date": until})
        await store_many(ctx, items)
        await conn.execute(update(coverage_transition).where(t.id.in_([r.id for r in due])).values(reminded_at=now_us()))
    return len(due)


def transition_part(row) -> dict:
    """One patient of the fund's list ($coverage-transitions)."""
    parts = [
        {"name": "patient", "valueReference": {"reference": f"Patient/{row.patient_id}"}},
        {"name": "coverage", "valueReference": {"reference": f"Coverage/{row.coverage_id}"}},
        {"name": "ends", "valueDate": row.ends_on},
        {"name": "ald", "valueBoolean": bool(row.ald)},
        {"name": "status", "valueCode": "closed" if row.closed_at else "open"},
    ]
    if row.transition_until:
        parts.append({"name": "transitionUntil", "valueDate": row.transition_until})
    if row.next_regime:
        parts.append({"name": "nextRegime", "valueCode": row.next_regime})
    for name, at in (("noticeSent", row.notified_at), ("reminderSent", row.reminded_at)):
        if at:
            parts.append({"name": name, "valueDateTime": to_instant(at)})
    return {"name": "transition", "part": parts}
