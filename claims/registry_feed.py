"""``POST /fhir/$registry-feed`` (a registry's or a fund gateway's feed) and the fund's list
``GET /fhir/Organization/{fund}/$coverage-transitions``.

A feed (CSV or Bundle, ``claims.feed_rows``) is checked whole, then applied in one transaction
or not at all: thresholds become a version of the ``rsu-thresholds`` reference table (effective
from their start), indexes the member's RSU ``Observation`` (a later feed writes a new version),
coverage rows the Coverage's period per regime.  A coverage ended while the household's index is
at or above its programme's threshold is a *cliff*: the Coverage carries the next regime and, for
an ALD patient, the end of the transition (``claims.transition``); the patient, their doctors and
the fund are told (``claims.cliff_notices``); the fund's list shows it until a later feed
restores the cover.  Audited with every patient the feed touched.
"""
from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from datetime import date, timedelta

import orjson
from sqlalchemy import insert, select, update

from claims.adjudication.model import CoverageFacts
from claims.callers import FUND_ITSELF_AGENT
from claims.cliff_notices import notify_ending, transition_part
from claims.clock import now_us
from claims.coverage import coverage_facts
from claims.feed_rows import FeedRow, rows_from_bundle, rows_from_csv
from claims.lookups import _IDENTIFIER_PARAMS, patient_records, patients_by_identifier, resources_by_id
from claims.operations import caller
from claims.settings import get_claims_settings
from claims.tables import coverage_transition, registry_feed
from claims.transition import NEXT_REGIME, cliff_extension
from claims.uris import EXT_COVERAGE_CLIFF, FUND, HOUSEHOLD, RSU
from ehr.interactions.context import Context, store_many
from ehr.operations.registry import Invocation, operation
from ehr.outcome import FHIRError, not_found
from ehr.rest.http import fhir_response
from ehr.security.roles import Role
from ehr.store import repository
from ehr.store.db import read_connection, write_transaction
from ehr.store.repository import NewVersion
from ehr.store.schema import idx_token, resource
from profiles.reference.kinds import KINDS
from profiles.reference.loader import ParsedFile, load_parsed
from profiles.reference.pricing import rsu_thresholds_on

COVERAGE_CLASS = "http://terminology.hl7.org/CodeSystem/coverage-class"


def _sender(inv: Invocation) -> tuple[str, str | None]:
    """(who sends, the fund they may speak for — None: any); 403 for anyone else."""
    p = caller(inv)
    if p is None or p.role is Role.UNRESTRICTED:
        return "server", None
    if p.role is Role.REGISTRY:
        return p.subject, None
    if p.role is Role.INSURER and p.is_system and p.fund:
        return p.subject, p.fund
    raise FHIRError.of(403, "forbidden", "Seuls les registres (RSU/RNP) et les passerelles des organismes envoient des flux")


async def _funds(conn, codes: set[str]) -> dict[str, str]:
    """Fund code -> Organization/<id>, by the ``sid/fund`` identifier."""
    if not codes:
        return {}
    rows = await conn.execute(select(idx_token.c.code, resource.c.res_id).select_from(
        idx_token.join(resource, resource.c.rid == idx_token.c.rid)).where(
        idx_token.c.param == _IDENTIFIER_PARAMS["Organization"], idx_token.c.system == FUND,
        idx_token.c.code.in_(sorted(codes)), resource.c.deleted.is_(False)))
    return {code: f"Organization/{rid}" for code, rid in rows}


async def _resolve(conn, rows: list[FeedRow], own_fund: str | None) -> tuple[dict[str, str], dict[str, str]]:
    """Patients and funds the rows name; every row naming an unknown one (or another fund's
    coverage, for a fund's gateway: 403, the whole feed) is an issue, and nothing is written."""
    funds = await _funds(conn, {r.fund for r in rows if r.fund})
    named = {r.patient for r in rows if r.patient}
    direct = {p.split("/", 1)[1] for p in named if p.startswith("Patient/")}
    known = {i for (_, i) in await resources_by_id(conn, [("Patient", i) for i in direct])}
    patients = {p: p.split("/", 1)[1] for p in named if p.startswith("Patient/") and p.split("/", 1)[1] in known}
    for p in named - set(patients) - {f"Patient/{i}" for i in direct}:
        system, _, value = p.partition("|")
        found = await patients_by_identifier(conn, system, value)
        if len(found) == 1:
            patients[p] = found[0]
    issues, foreign = [], []
    for r in rows:
        if r.patient and r.patient not in patients:
            issues.append(r.issue(f"patient inconnu « {r.patient} »", "not-found"))
        if r.fund and r.fund not in funds:
            issues.append(r.issue(f"organisme sans fiche « {r.fund} »", "not-found"))
        elif own_fund and r.kind == "coverage" and funds[r.fund] != own_fund:
            foreign.append(r.issue(f"couverture de l'organisme {r.fund} : la passerelle de {own_fund} n'envoie que les "
                                   "couvertures de son organisme ; le flux est refusé en entier, rien n'en est chargé",
                                   "forbidden"))
    if foreign:  # a sender speaking for another fund: refused as such, whatever else is wrong
        raise FHIRError(403, foreign)
    if issues:
        raise FHIRError(422, issues)
    return patients, funds


async def _thresholds(conn, rows: list[FeedRow], feed_id: int, sender: str, digest: str) -> None:
    by_start: dict[tuple, list[FeedRow]] = defaultdict(list)
    for r in rows:
        by_start[(r.start, r.end)].append(r)
    for (start, end), group in sorted(by_start.items(), key=lambda kv: kv[0][0]):
        parsed = ParsedFile(KINDS["rsu-thresholds"], [(i, {"code": r.programme, "threshold": r.value}) for i, r in enumerate(group)],
                            {}, [], digest)
        await load_parsed(conn, parsed, f"flux-{feed_id}-{start.isoformat()}", start, end, f"flux {feed_id} ({sender})"[:512])


def _index_observation(obs_id: str, pid: str, r: FeedRow) -> dict:
    period = {"start": r.start.isoformat(), **({"end": r.end.isoformat()} if r.end else {})}
    obs = {"resourceType": "Observation", "id": obs_id, "status": "final",
           "code": {"coding": [{"system": RSU, "code": "index", "display": "Indice socio-économique RSU"}]},
           "subject": {"reference": f"Patient/{pid}"}, "effectivePeriod": period, "valueQuantity": {"value": float(r.value)}}
    if r.household:
        obs["focus"] = [{"identifier": {"system": HOUSEHOLD, "value": r.household}}]
    return obs


def _is_index(res: dict) -> bool:
    return res.get("resourceType") == "Observation" and any(
        c.get("system") == RSU and c.get("code") == "index" for c in (res.get("code") or {}).get("coding") or [])


def _matches(cov: dict, fund_ref: str, regime: str) -> bool:
    payor = any((p or {}).get("reference") == fund_ref for p in cov.get("payor") or [])
    plan = [c.get("value") for c in cov.get("class") or [] if isinstance(c, dict)]
    return payor and (not plan or regime in plan) and cov.get("order", 1) == 1


def _coverage(cov_id: str, pid: str, fund_ref: str, r: FeedRow, prior: dict | None) -> dict:
    cov = dict(prior) if prior else {
        "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": f"Patient/{pid}"},
        "subscriber": {"reference": f"Patient/{pid}"}, "payor": [{"reference": fund_ref}],
        "class": [{"type": {"coding": [{"system": COVERAGE_CLASS, "code": "plan"}]}, "value": r.programme}],
    }
    cov["id"], cov["status"] = cov_id, "active"
    cov["period"] = {"start": r.start.isoformat(), **({"end": r.end.isoformat()} if r.end else {})}
    cov["extension"] = [e for e in cov.get("extension") or [] if e.get("url") != EXT_COVERAGE_CLIFF]
    return cov


class Feed:
    """One feed's application, inside its transaction."""

    def __init__(self, conn, base_url: str, feed_id: int, patients: dict[str, str], funds: dict[str, str]):
        self.ctx, self.feed_id, self.patients, self.funds = Context(conn, base_url), feed_id, patients, funds
        self.opened = self.closed = 0

    async def indexes(self, rows: list[FeedRow], records: dict[str, list[dict]]) -> dict[str, float]:
        latest: dict[str, tuple[str, float]] = {}
        for pid, recs in records.items():
            for obs in filter(_is_index, recs):
                latest[pid] = ((obs.get("effectivePeriod") or {}).get("start", ""), obs["valueQuantity"]["value"], obs["id"])
        for r in sorted(rows, key=lambda r: r.start):
            pid = self.patients[r.patient]
            before = latest.get(pid)
            if before and before[0] > r.start.isoformat():
                continue  # older than what the file holds: a later feed has superseded it
            obs_id = before[2] if before else str(uuid.uuid4())
            prior = await repository.current(self.ctx.conn, "Observation", obs_id) if before else None
            await store_many(self.ctx, [NewVersion("Observation", obs_id, _index_observation(obs_id, pid, r), "PUT" if prior else "POST", prior)])
            latest[pid] = (r.start.isoformat(), float(r.value), obs_id)
        return {pid: v for pid, (_, v, _) in latest.items()}

    async def coverages(self, rows: list[FeedRow], records: dict[str, list[dict]], index: dict[str, float]) -> None:
        settings = get_claims_settings()
        for r in rows:
            pid, fund_ref = self.patients[r.patient], self.funds[r.fund]
            found = next((c for c in records[pid] if c["resourceType"] == "Coverage" and _matches(c, fund_ref, r.programme)), None)
            cov_id = found["id"] if found else str(uuid.uuid4())
            prior = await repository.current(self.ctx.conn, "Coverage", cov_id) if found else None
            cov = _coverage(cov_id, pid, fund_ref, r, found)
            old = coverage_facts(found, {}) if found else None
            ends_earlier = r.end is not None and (old is None or old.end is None or r.end < old.end)
            threshold = (await rsu_thresholds_on(self.ctx.conn, r.end)).get(r.programme) if r.end else None
            cliff = ends_earlier and threshold is not None and pid in index and index[pid] >= float(threshold)
            facts = coverage_facts(cov, {})
            until = None
            if cliff:
                ald = any(e.on(r.end) for e in facts.exemptions)
                until = r.end + timedelta(days=settings.transition_days(r.fund)) if ald else None
                cov["extension"].append(cliff_extension(NEXT_REGIME.get(r.programme), until))
            if not cov["extension"]:
                del cov["extension"]
            await store_many(self.ctx, [NewVersion("Coverage", cov_id, cov, "PUT" if prior else "POST", prior)])
            await self._transition(pid, cov_id, fund_ref, r, facts, cliff, until)

    async def _transition(self, pid: str, cov_id: str, fund_ref: str, r: FeedRow, facts: CoverageFacts,
                          cliff: bool, until: date | None) -> None:
        t = coverage_transition.c
        conn = self.ctx.conn
        now = now_us()
        closed = await conn.execute(update(coverage_transition).where(t.coverage_id == cov_id, t.closed_at.is_(None))
                                    .values(closed_at=now, closed_feed_id=self.feed_id))
        self.closed += 0 if cliff else closed.rowcount
        if not cliff:
            return
        nxt = NEXT_REGIME.get(r.programme)
        await conn.execute(insert(coverage_transition).values(
            patient_id=pid, coverage_id=cov_id, fund_ref=fund_ref, regime=r.programme, next_regime=nxt,
            ends_on=r.end.isoformat(), ald=1 if until else 0, transition_until=until.isoformat() if until else None,
            feed_id=self.feed_id, created_at=now, notified_at=now))
        await notify_ending(self.ctx, pid, cov_id, fund_ref, r.end, nxt, until)
        self.opened += 1


@operation("registry-feed", levels={"system"}, affects_state=True, consumes={"text/csv"},
           callers={Role.REGISTRY, Role.INSURER}, definition="https://fhir.sijill.ma/OperationDefinition/registry-feed")
async def receive_feed(inv: Invocation):
    sender, own_fund = _sender(inv)
    raw = inv.first("body")
    if isinstance(raw, bytes):
        fmt, digest = "csv", hashlib.sha256(raw).hexdigest()
        try:
            rows, issues = rows_from_csv(raw.decode("utf-8-sig"))
        except UnicodeDecodeError:
            raise FHIRError.of(400, "invalid", "Le fichier CSV doit être encodé en UTF-8") from None
    elif isinstance(inv.resource, dict) and inv.resource.get("resourceType") == "Bundle":
        fmt, digest = "bundle", hashlib.sha256(orjson.dumps(inv.resource)).hexdigest()
        rows, issues = rows_from_bundle(inv.resource)
    else:
        raise FHIRError.of(400, "invalid", "$registry-feed prend un Bundle ou un fichier text/csv")
    if issues:
        raise FHIRError(422, issues)
    security = inv.request.state.security
    async with write_transaction(inv.engine) as conn:
        patients, funds = await _resolve(conn, rows, own_fund)
        touched = sorted({f"Patient/{p}" for p in patients.values()})
        feed_id = (await conn.execute(insert(registry_feed).values(
            sender=sender, format=fmt, sha256=digest, received_at=now_us(), row_count=len(rows),
            patients=orjson.dumps(touched).decode()))).inserted_primary_key[0]
        await _thresholds(conn, [r for r in rows if r.kind == "threshold"], feed_id, sender, digest)
        records = await patient_records(conn, patients.values(), ["Coverage", "Observation"])
        feed = Feed(conn, inv.settings.base_url, feed_id, patients, funds)
        index = await feed.indexes([r for r in rows if r.kind == "index"], records)
        await feed.coverages([r for r in rows if r.kind == "coverage"], records, index)
        await security.audit.record(conn, patients=touched)
    out = {"resourceType": "Parameters", "parameter": [
        {"name": "feed", "valueString": str(feed_id)}, {"name": "rows", "valueInteger": len(rows)},
        {"name": "patients", "valueInteger": len(touched)}, {"name": "transitionsOpened", "valueInteger": feed.opened},
        {"name": "transitionsClosed", "valueInteger": feed.closed}]}
    return fhir_response(orjson.dumps(out))


@operation("coverage-transitions", levels={"instance"}, types={"Organization"}, checks_target=True,
           callers={FUND_ITSELF_AGENT}, definition="https://fhir.sijill.ma/OperationDefinition/Organization-coverage-transitions")
async def coverage_transitions(inv: Invocation):
    """The fund's patients in or approaching a transition (``status=open``, default) or all."""
    p = caller(inv)
    fund_ref = f"Organization/{inv.res_id}"
    if p is not None and p.role is not Role.UNRESTRICTED and not (p.role is Role.INSURER and p.fund == fund_ref):
        raise not_found("Organization", inv.res_id)
    t = coverage_transition.c
    stmt = select(coverage_transition).where(t.fund_ref == fund_ref).order_by(t.ends_on, t.id)
    if (inv.first("status") or "open") == "open":
        stmt = stmt.where(t.closed_at.is_(None))
    async with read_connection(inv.engine) as conn:
        rows = (await conn.execute(stmt.limit(1000))).all()
    await inv.request.state.security.audit.record_read(patients=sorted({f"Patient/{r.patient_id}" for r in rows}))
    out: dict = {"resourceType": "Parameters"}
    if rows:
        out["parameter"] = [transition_part(r) for r in rows]
    return fhir_response(orjson.dumps(out))
