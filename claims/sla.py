"""The 48-hour promise, measured: per fund and per (Moroccan) day of receipt.

Received, decided, the share decided by the deadline, decision time p50/p95/p99 (hours) and
the breaches with their reason (what the claim was waiting for: an agent's review and why,
the provider's answer, or simply the queue) — for the day's care sheets and, as their own
section, for the day's appeals (``claims.appeals``: received that day, decided when the agent
closes them, on their own 48-hour clock).  Served as a ``MeasureReport`` by
``Organization/{id}/$sla?date=YYYY-MM-DD`` (appeals in the groups coded ``appeal-…``) and
printed by ``sijill sla`` (one table each).
"""
from __future__ import annotations

import asyncio
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import orjson
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from claims import appeals
from claims.callers import FUND_ITSELF_AGENT
from claims.caresheet import today
from claims.clock import HOUR_US, day_bounds, now_us, to_instant
from claims.lookups import fund_code as fund_code_of
from claims.reasons import REASONS
from claims.settings import get_claims_settings
from claims.tables import claim_appeal, claim_ledger, claim_review_task
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.rest.http import fhir_response
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import create_engine, read_connection

SLA_CS = "https://fhir.sijill.ma/CodeSystem/claim-sla"
MEASURE = "https://fhir.sijill.ma/Measure/claim-decision-sla"
POPULATION = "http://terminology.hl7.org/CodeSystem/measure-population"
UCUM = "http://unitsofmeasure.org"
APPEAL = "appeal"  # an appeal's breach reason: the agents' review did not end in time
_BREACH_TEXT = {
    "backlog": "File d'attente : non traitée à temps par la liquidation automatique",
    "waiting-info": "En attente de la réponse du prestataire",
    APPEAL: "Recours : examen par un agent de l'organisme non terminé à temps",
}


@dataclass(frozen=True)
class Breach:
    claim_id: str
    reason: str
    overdue_hours: float
    decided: bool

    @property
    def reason_text(self) -> str:
        return _BREACH_TEXT.get(self.reason) or (REASONS[self.reason].fr if self.reason in REASONS else self.reason)


@dataclass(kw_only=True)
class Tally:
    """The 48-hour measures of one population: a fund's care sheets, or its appeals, of one day."""

    received: int = 0
    decided: int = 0
    within_deadline: int = 0
    open_in_time: int = 0  # not decided yet, deadline not passed: neither success nor breach yet
    durations_h: list[float] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)

    def count(self, claim_id: str, received_at: int, due_at: int, decided_at: int | None, now: int, waiting_for: str) -> None:
        """One claim or appeal; ``waiting_for`` is the breach's reason should it be late."""
        self.received += 1
        if decided_at is not None:
            self.decided += 1
            self.durations_h.append((decided_at - received_at) / HOUR_US)
            if decided_at <= due_at:
                self.within_deadline += 1
        late_by = (decided_at if decided_at is not None else now) - due_at
        if decided_at is None and late_by <= 0:
            self.open_in_time += 1
        if late_by > 0:
            self.breaches.append(Breach(claim_id, waiting_for, round(late_by / HOUR_US, 2), decided_at is not None))

    @property
    def settled(self) -> int:
        """Those whose fate against the deadline is known (decided, or already late)."""
        return self.received - self.open_in_time

    @property
    def share_within(self) -> float:
        return self.within_deadline / self.settled if self.settled else 1.0

    def percentile(self, p: float) -> float | None:
        """Nearest-rank percentile of the decision times (hours)."""
        if not self.durations_h:
            return None
        ordered = sorted(self.durations_h)
        return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)


@dataclass
class FundDay(Tally):
    """A fund's day: its care sheets' measures (the ``Tally`` fields) and its appeals'."""

    fund_code: str
    fund_ref: str
    day: date
    appeals: Tally = field(default_factory=Tally)


async def sla_report(conn: AsyncConnection, day: date, *, tz: str, fund_code: str | None = None, now: int | None = None) -> list[FundDay]:
    now = now or now_us()
    start, end = day_bounds(day, tz)
    led, task, a = claim_ledger.c, claim_review_task.c, claim_appeal.c
    claims = (
        select(led.claim_id, led.fund_code, led.fund_ref, led.received_at, led.due_at, led.decided_at,
               task.reason_code, task.status.label("task_status"))
        .select_from(claim_ledger.outerjoin(claim_review_task, task.ledger_id == led.id))
        .where(led.received_at >= start, led.received_at < end)
    )
    appealed = (  # appeals proper: not the complementary revisions that follow them
        select(led.claim_id, a.fund_code, led.fund_ref, a.received_at, a.due_at, a.closed_at, a.status)
        .select_from(claim_appeal.join(claim_ledger, led.id == a.ledger_id))
        .where(a.received_at >= start, a.received_at < end, a.follows_id.is_(None))
    )
    if fund_code:
        claims = claims.where(led.fund_code == fund_code.upper())
        appealed = appealed.where(a.fund_code == fund_code.upper())
    funds: dict[str, FundDay] = {}
    for r in await conn.execute(claims):
        reason = "waiting-info" if r.task_status == "waiting-info" else (r.reason_code or "backlog")
        funds.setdefault(r.fund_code, FundDay(r.fund_code, r.fund_ref, day)).count(
            r.claim_id, r.received_at, r.due_at, r.decided_at, now, reason)
    for r in await conn.execute(appealed):
        reason = "waiting-info" if r.status == appeals.WAITING else APPEAL
        funds.setdefault(r.fund_code, FundDay(r.fund_code, r.fund_ref, day)).appeals.count(
            r.claim_id, r.received_at, r.due_at, r.closed_at, now, reason)
    return [funds[k] for k in sorted(funds)]


@dataclass(frozen=True)
class _Section:
    """How one population is named: group codes' prefix and displays, the CLI table and its lines."""

    prefix: str
    within: str
    decided: str
    percentile: str  # formatted with p
    breaches: str
    title: str
    columns: tuple[str, str]  # received, decided (French agrees with the noun)
    tag: str  # after the fund's code on a breach line


_CLAIMS = _Section("", "Décidées dans le délai de 48 heures", "Décidées", "Délai de décision, {p}e centile (heures)",
                   "Dépassements du délai", "Délai de décision des feuilles de soins (48 h)", ("Reçues", "Décidées"), "")
_APPEALS = _Section("appeal-", "Recours décidés dans le délai de 48 heures", "Recours décidés",
                    "Délai de décision des recours, {p}e centile (heures)", "Recours : dépassements du délai",
                    "Délai de décision des recours (48 h)", ("Reçus", "Décidés"), " (recours)")


def _pop(code: str, count: int) -> dict:
    return {"code": {"coding": [{"system": POPULATION, "code": code}]}, "count": count}


def _groups(t: Tally, section: _Section) -> list[dict]:
    def group(code: str, display: str, **rest) -> dict:
        return {"code": {"coding": [{"system": SLA_CS, "code": section.prefix + code, "display": display}]}, **rest}

    groups = [
        group("decided-by-deadline", section.within,
              population=[_pop("initial-population", t.received), _pop("denominator", t.settled),
                          _pop("numerator", t.within_deadline)],
              measureScore={"value": round(t.share_within * 100, 2), "unit": "%", "system": UCUM, "code": "%"}),
        group("decided", section.decided, population=[_pop("numerator", t.decided)]),
    ]
    for p in (50, 95, 99):
        value = t.percentile(p)
        g = group(f"decision-time-p{p}", section.percentile.format(p=p))
        if value is not None:
            g["measureScore"] = {"value": value, "unit": "h", "system": UCUM, "code": "h"}
        groups.append(g)
    breach_group = group("breaches", section.breaches, population=[_pop("numerator", len(t.breaches))])
    by_reason = Counter(b.reason for b in t.breaches)
    if by_reason:
        breach_group["stratifier"] = [{
            "code": [{"text": "motif"}],
            "stratum": [
                {"value": {"coding": [{"system": SLA_CS, "code": reason}], "text": Breach("", reason, 0, False).reason_text},
                 "population": [_pop("numerator", n)]}
                for reason, n in sorted(by_reason.items())
            ],
        }]
    groups.append(breach_group)
    return groups


def measure_report(fd: FundDay, tz: str) -> dict:
    start, end = day_bounds(fd.day, tz)
    report = {
        "resourceType": "MeasureReport",
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "date": to_instant(now_us()),
        "reporter": {"reference": fd.fund_ref},
        "period": {"start": to_instant(start), "end": to_instant(end - 1)},
        "group": _groups(fd, _CLAIMS) + _groups(fd.appeals, _APPEALS),
    }
    late = list(dict.fromkeys(b.claim_id for b in fd.breaches + fd.appeals.breaches))  # a claim late on both counts once
    if late:
        report["evaluatedResource"] = [{"reference": f"Claim/{claim_id}"} for claim_id in late[:1000]]
    return report


@operation("sla", levels={"instance"}, types={"Organization"}, callers={Role.ADMIN, FUND_ITSELF_AGENT},
           definition="https://fhir.sijill.ma/OperationDefinition/Organization-sla")
async def sla_operation(inv: Invocation):
    tz = get_claims_settings().timezone
    raw = inv.first("date")
    try:
        day = date.fromisoformat(str(raw)) if raw else today(tz)
    except ValueError:
        raise FHIRError.of(400, "value", "date doit être une date AAAA-MM-JJ", "http.date") from None
    async with read_connection(inv.engine) as conn:
        org = await repository.current(conn, "Organization", inv.res_id, access=inv.access)
        if org is None or org.deleted:
            raise not_found("Organization", inv.res_id)
        code = fund_code_of(org.resource(), inv.res_id)
        days = await sla_report(conn, day, tz=tz, fund_code=code)
    fd = days[0] if days else FundDay(code, f"Organization/{inv.res_id}", day)
    return fhir_response(orjson.dumps(measure_report(fd, tz)))


def print_report(days: list[FundDay], console: Console) -> None:
    for section, tally in ((_CLAIMS, lambda fd: fd), (_APPEALS, lambda fd: fd.appeals)):
        table = Table(title=section.title)
        for col in ("Organisme", "Jour", *section.columns, "En cours", "Dans le délai", "p50 (h)", "p95 (h)", "p99 (h)",
                    "Dépassements"):
            table.add_column(col, justify="right" if col not in ("Organisme", "Jour") else "left")
        fmt = lambda v: "—" if v is None else f"{v:.2f}"  # noqa: E731
        for fd in days:
            t = tally(fd)
            table.add_row(fd.fund_code, fd.day.isoformat(), str(t.received), str(t.decided), str(t.open_in_time),
                          f"{t.share_within:.1%}", fmt(t.percentile(50)), fmt(t.percentile(95)), fmt(t.percentile(99)),
                          str(len(t.breaches)))
        console.print(table)
        for fd in days:
            for reason, n in sorted(Counter(b.reason_text for b in tally(fd).breaches).items()):
                console.print(f"  {fd.fund_code}{section.tag}: {n} dépassement(s) — {reason}")


async def _sla(database_url: str, day: date, fund: str | None, tz: str) -> list[FundDay]:
    engine = create_engine(database_url, pool_size=1)
    try:
        async with read_connection(engine) as conn:
            return await sla_report(conn, day, tz=tz, fund_code=fund)
    finally:
        await engine.dispose()


def sla_command(
    day: str = typer.Option(None, "--date", help="Day of receipt, AAAA-MM-JJ (default: today, Moroccan time)."),
    fund: str = typer.Option(None, help="Only this fund's code (CNSS, CNOPS, …)."),
) -> None:
    """Report the 48-hour decision SLA per fund for a day."""
    from ehr.settings import get_settings

    tz = get_claims_settings().timezone
    when = date.fromisoformat(day) if day else today(tz)
    print_report(asyncio.run(_sla(get_settings().database_url, when, fund, tz)), Console())
