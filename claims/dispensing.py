"""Dispensing a prescription line: ``POST /fhir/MedicationDispense`` (and Bundle entries).

A dispense naming its line (``authorizingPrescription``) is checked, in the transaction that
writes it, against what remains on the line while holding the line's ``dispense_line`` row
(``claims.prescription_lines.lock_line``): two pharmacies dispensing the same line at the same
moment are serialised, and the second sees what the first handed over — beyond what remains is
409 ``business-rule`` (``MedicationDispense.quantity``, the remaining quantity in the message).
A line cancelled, stopped, entered in error or past ``dispenseRequest.validityPeriod.end`` is
422 (``MedicationDispense.authorizingPrescription``); a substitution the line does not allow is
422.  The server records, on the dispense, the part of the price above the reimbursement base
the patient pays (``dispense-price-difference``), and when nothing remains on any line of the
prescription it writes every line as ``completed``.  The patient is told, in the same
transaction, that their prescription was handed over (``prescription-dispensed``: its number and
the day, nothing clinical — so a dispense they did not ask for is noticed), once per dispense.
A dispense is a fact once handed over: it is not rewritten in place (405), as a submitted care
sheet.
"""
from __future__ import annotations

from datetime import date
from decimal import Decimal

from claims.caresheet import local_reference_id, today
from claims.messaging.notices import notify
from claims.money import money, round_cent, to_decimal
from claims.ports import Pack, reference_for
from claims.prescription_lines import (
    CLOSED,
    RxLine,
    add_dispensed,
    dispensed,
    lock_line,
    codes_of,
    read_line,
    sibling_lines,
)
from claims.settings import get_claims_settings
from claims.uris import ATC, MEDICINE, SD
from ehr.hooks import submission
from ehr.interactions.context import Context, Result, store_many
from ehr.interactions.create import create
from ehr.outcome import FHIRError
from ehr.store import repository
from ehr.store.repository import NewVersion

EXT_PRICE_DIFFERENCE = SD + "dispense-price-difference"
COUNTED = frozenset({"completed", "in-progress"})  # handed over (or being handed over): counts against the line
_RX = "MedicationDispense.authorizingPrescription"


def _quantity(res: dict) -> Decimal:
    qty = to_decimal((res.get("quantity") or {}).get("value")) if isinstance(res.get("quantity"), dict) else None
    if qty is None or qty <= 0 or qty != qty.quantize(Decimal("0.001")):
        raise FHIRError.of(422, "required", "La dispensation indique la quantité remise (positive, au millième près)",
                           "MedicationDispense.quantity.value")
    return qty


def _line_id(res: dict) -> str | None:
    refs = res.get("authorizingPrescription") or []
    if not isinstance(refs, list) or not refs:
        return None
    if len(refs) > 1:
        raise FHIRError.of(422, "business-rule", "Une dispensation porte sur une seule ligne d'ordonnance", f"{_RX}[1]")
    line_id = local_reference_id(refs[0], "MedicationRequest")
    if line_id is None:
        raise FHIRError.of(422, "invalid", "authorizingPrescription référence la ligne (MedicationRequest/<id>)", _RX)
    return line_id


def _refuse_closed(line: RxLine, on: date) -> None:
    if line.status in CLOSED:
        raise FHIRError.of(422, "business-rule", f"La ligne d'ordonnance est « {line.status} » : elle ne peut pas être délivrée", _RX)
    if line.expired(on):
        raise FHIRError.of(422, "business-rule",
                           f"L'ordonnance n'est plus valable depuis le {line.valid_until.isoformat()} (dispenseRequest.validityPeriod)", _RX)
    if line.prescribed is None:
        raise FHIRError.of(422, "business-rule", "La ligne ne précise pas la quantité prescrite (dispenseRequest.quantity)", _RX)


async def _check_medication(ctx: Context, res: dict, line: RxLine, on: date) -> Pack | None:
    """The pack handed over: the prescribed one, one of the prescribed substance's (a line
    written by substance), or a declared substitute the line allows.  Returns it, priced, when
    the reference data knows it."""
    codes = sorted(codes_of(res.get("medicationCodeableConcept"), MEDICINE))
    code = codes[0] if codes else None
    packs = await (await reference_for(ctx.conn)).medicines.packs_for_atc(ctx.conn, line.atc, on) if line.atc else {}
    of_substance = {p.code: p for ps in packs.values() for p in ps}
    sub = res.get("substitution") if isinstance(res.get("substitution"), dict) else {}
    where = "MedicationDispense.medicationCodeableConcept"
    if sub.get("wasSubstituted") is True:
        if not line.substitution_allowed:
            raise FHIRError.of(422, "business-rule", "Le prescripteur n'autorise pas la substitution sur cette ligne "
                               "(MedicationRequest.substitution.allowed)", "MedicationDispense.substitution.wasSubstituted")
        if code is None:
            raise FHIRError.of(422, "required", f"Le médicament substitué est indiqué par son code ({MEDICINE})", where)
        if line.atc and code not in of_substance:
            raise FHIRError.of(422, "business-rule", "Le médicament substitué n'est pas une présentation remboursable de la "
                               "substance prescrite", where)
    elif code is not None and code not in line.packs and (line.packs or (line.atc and code not in of_substance)):
        raise FHIRError.of(422, "business-rule", "Le médicament remis n'est pas celui de la ligne ; une substitution se déclare "
                           "(MedicationDispense.substitution)", where)
    return of_substance.get(code) if code else None


def _record_pack(res: dict, pack: Pack | None, qty: Decimal) -> None:
    """The pack's substance (ATC) beside its EAN-13 — what the fund matches the prescription by —
    and what the patient pays above the reimbursement base (its public price minus its base,
    × quantity): recorded on the dispense, shown on the care sheet."""
    concept = res.get("medicationCodeableConcept")
    if pack is not None and pack.atc and not codes_of(concept, ATC):
        concept["coding"] = [*concept.get("coding", []), {"system": ATC, "code": pack.atc}]
    kept = [e for e in res.get("extension") or [] if not (isinstance(e, dict) and e.get("url") == EXT_PRICE_DIFFERENCE)]
    if pack is not None and pack.base is not None:
        kept.append({"url": EXT_PRICE_DIFFERENCE, "valueMoney": money(round_cent((pack.ppv - pack.base) * qty))})
    if kept:
        res["extension"] = kept
    else:
        res.pop("extension", None)


@submission("MedicationDispense", instead="une erreur de délivrance se signale au médecin et à "
            "l'organisme (Communication) ; ce qui reste à délivrer se lit par $remaining")
async def dispense(ctx: Context, res: dict, res_id: str | None = None) -> Result:
    line_id = _line_id(res)
    if line_id is None or res.get("status") not in COUNTED:
        return await create(ctx, "MedicationDispense", res, res_id=res_id)  # over the counter, or not handed over
    qty = _quantity(res)
    stored = await repository.current(ctx.conn, "MedicationRequest", line_id, access=ctx.access)
    if stored is None or stored.deleted:
        raise FHIRError.of(422, "not-found", f"MedicationRequest/{line_id} est inconnue", _RX)
    line = read_line(stored.resource())
    if local_reference_id(res.get("subject"), "Patient") not in (None, line.patient_id):
        raise FHIRError.of(422, "business-rule", "La dispensation et l'ordonnance ne sont pas du même patient", "MedicationDispense.subject")
    on = today(get_claims_settings().timezone)
    _refuse_closed(line, on)
    pack = await _check_medication(ctx, res, line, on)
    already = await lock_line(ctx.conn, line)
    # Read again under the lock: the line may have been completed or cancelled meanwhile.
    line = read_line((await repository.current(ctx.conn, "MedicationRequest", line_id)).resource())
    _refuse_closed(line, on)
    remaining = max(line.prescribed - already, Decimal(0))
    if qty > remaining:
        raise FHIRError.of(409, "business-rule",
                           f"Quantité demandée {qty} : il reste {remaining} à délivrer sur cette ligne "
                           f"(prescrit {line.prescribed}, déjà délivré {already})", "MedicationDispense.quantity")
    res.setdefault("subject", {"reference": f"Patient/{line.patient_id}"})
    _record_pack(res, pack, qty)
    result = await create(ctx, "MedicationDispense", res, res_id=res_id)
    await add_dispensed(ctx.conn, line.id, qty)
    # The server's notice, not the pharmacist's write: through the connection, past their write rules.
    await notify(ctx.conn, line.patient_id, "prescription-dispensed", f"MedicationDispense/{result.stored.res_id}",
                 {"number": line.number or "", "date": on.strftime("%d/%m/%Y")})
    if qty == remaining:
        await _complete_if_done(ctx, line)
    return result


async def _complete_if_done(ctx: Context, line: RxLine) -> None:
    """Nothing remains on any line of the prescription: every line is written ``completed``."""
    lines = await sibling_lines(ctx.conn, line)
    done = await dispensed(ctx.conn, [x.id for x in lines])
    if any(x.prescribed is None or done.get(x.id, Decimal(0)) < x.prescribed for x in lines if x.status not in CLOSED):
        return
    open_lines = [x for x in lines if x.status not in CLOSED and x.status != "completed"]
    current = await repository.current_many(ctx.conn, [("MedicationRequest", x.id) for x in open_lines],
                                            for_update=ctx.conn.dialect.name == "postgresql")
    await store_many(ctx, [
        NewVersion("MedicationRequest", x.id, {**x.res, "status": "completed"}, "PUT", current[("MedicationRequest", x.id)])
        for x in open_lines
    ])
