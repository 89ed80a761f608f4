"""Where a patient or a provider is: Morocco's regions and provinces (the shipped CodeSystem
``territoire``, profiles/terminology/content) matched in SQL against the indexed parts of the
resource's ``address`` (search parameter ``address``: district, state, city… each folded into
``idx_string.norm``).

An address is placed by any part naming a province or prefecture (its code, French or Arabic
name) — ``Address.district`` in practice — and, failing that, by a part naming a region
(``Address.state``: name or number ``01``…``12``/``MA-06``).  A province code ``NN-name`` starts
with its region's number, so the region of a province is ``substr(code, 1, 2)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import String, Subquery, func, literal, select, union_all

from ehr.search.normalize import normalize
from ehr.search.registry import param_hash
from ehr.store.schema import idx_string, resource
from profiles.terminology.content import static_resources

TERRITORY = "https://fhir.sijill.ma/CodeSystem/territoire"
UNPLACED = "inconnu"  # the stratum of addresses naming no known region or province
ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")  # what ``address`` indexes


@dataclass(frozen=True)
class Area:
    code: str
    fr: str
    ar: str
    region: str  # the region's code (itself for a region)


def _arabic(concept: dict) -> str:
    return next(d["value"] for d in concept["designation"] if d.get("language") == "ar")


@lru_cache(maxsize=1)
def areas() -> dict[str, Area]:
    """Every region and province by code."""
    cs = next(r for r in static_resources() if r.get("url") == TERRITORY)
    out: dict[str, Area] = {}
    for reg in cs["concept"]:
        for concept in (reg, *reg["concept"]):
            out[concept["code"]] = Area(concept["code"], concept["display"], _arabic(concept), reg["code"])
    return out


@lru_cache(maxsize=1)
def _names() -> tuple[tuple[str, str, str | None], ...]:
    """(folded name, region, province or None) for every way an address may name an area."""
    keys: dict[str, tuple[str, str | None]] = {}
    for a in areas().values():
        province = None if a.code == a.region else a.code
        names = [a.code, a.fr, a.ar] + ([f"MA-{a.code}"] if province is None else [])
        for name in names:
            keys.setdefault(normalize(name), (a.region, province))
    return tuple((k, r, p) for k, (r, p) in sorted(keys.items()))


@lru_cache(maxsize=1)
def _by_name() -> dict[str, tuple[str, str | None]]:
    return {k: (r, p) for k, r, p in _names()}


def place_of(res: dict) -> tuple[str | None, str] | None:
    """(province or None, region) of a resource's ``address`` by the rule above — the parts the
    ``address`` search parameter indexes, folded the same way; None when no part names an area."""
    found = [hit for address in res.get("address") or [] if isinstance(address, dict)
             for part in ADDRESS_PARTS for text in _texts(address.get(part))
             if (hit := _by_name().get(normalize(text))) is not None]
    provinces = sorted(p for _, p in found if p)
    if provinces:
        return provinces[0], provinces[0][:2]
    return (None, min(r for r, _ in found)) if found else None


def _texts(value: object) -> list[str]:
    return [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str)]


def _names_relation() -> Subquery:
    rows = [select(literal(k, String).label("norm"), literal(r, String).label("region"),
                   literal(p, String).label("province")) for k, r, p in _names()]
    return union_all(*rows).subquery("area_name")


def placed(name: str, *res_types: str) -> Subquery:
    """(ref ``Type/id``, region, province) of every current resource of these types whose address
    names an area; one row per resource (several matching parts: the first province in code
    order, its region; a region alone when no part names a province)."""
    names = _names_relation().alias(f"{name}_area")
    params = [param_hash(t, "address") for t in res_types]
    return (
        select((resource.c.res_type + literal("/") + resource.c.res_id).label("ref"),
               func.coalesce(func.substr(func.min(names.c.province), 1, 2), func.min(names.c.region)).label("region"),
               func.min(names.c.province).label("province"))
        .select_from(resource.join(idx_string, idx_string.c.rid == resource.c.rid)
                     .join(names, names.c.norm == idx_string.c.norm))
        .where(resource.c.res_type.in_(res_types), resource.c.deleted.is_(False), idx_string.c.param.in_(params))
        .group_by(resource.c.res_type, resource.c.res_id)
        .subquery(name)
    )


def display(code: str | None) -> tuple[str, str]:
    """French and Arabic names of an area code (the code itself when unknown)."""
    a = areas().get(code or "")
    return (a.fr, a.ar) if a else (code or UNPLACED, code or "غير معروف")
