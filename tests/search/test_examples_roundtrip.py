"""Every official R4B example can be found again by each of its own indexed values.

All 742 examples are stored and indexed; then, for every index row (up to a few values per
parameter), a search value is written back from the row the way a client would write it
(``system|code``, ``Type/id``, ``ge<start>&le<end>``, ``value|system|code``, ``a$b``...) and
the example must be among the matches.  This exercises extraction, every value parser and
every SQL condition on real-world data, on both databases.
"""
from __future__ import annotations

from collections import defaultdict

import orjson
from sqlalchemy import insert

from ehr.search.dates import MAX_US, MIN_US
from ehr.search.engine import find_matches
from ehr.search.indexer import extract, index_resources
from ehr.search.registry import get_registry
from ehr.search.values import BIG, word_hash
from ehr.store.clock import to_instant
from ehr.store.schema import resource
from tests.search.helpers import official_examples

VALUES_PER_PARAM = 3


def esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("$", "\\$").replace("|", "\\|")


def _hash_names(res_type: str) -> dict[int, tuple[str, str, int | None]]:
    """param hash -> (code, row family, component index) for one resource type."""
    names = {}
    for p in get_registry().for_type(res_type).values():
        names[p.hash] = (p.code, "", None)
        names[word_hash(p.hash)] = (p.code, ":word", None)
        names[p.sub_hash(":identifier")] = (p.code, ":identifier", None)
        names[p.sub_hash(":of-type")] = (p.code, ":of-type", None)
        for i in range(len(p.components)):
            names[p.sub_hash(f"${i}")] = (p.code, "$", i)
            names[word_hash(p.sub_hash(f"${i}"))] = (p.code, "$word", i)  # never searched
    return names


def _num(v: float) -> str:
    return repr(float(v))


def token_value(row: dict) -> tuple[str, str] | None:
    """(modifier, value) finding this token row."""
    system, code, text = row["system"], row["code"], row["text"]
    if code is not None:
        return "", (esc(system) if system else "") + "|" + esc(code)
    if system is not None:
        return "", esc(system) + "|"
    if text:
        return ":text", esc(text)
    return None


def queries(table: str, row: dict) -> list[list[tuple[str, str]]] | None:
    """Query pairs (without the parameter code) that must match the row's resource; the
    first element of each pair is a modifier suffix."""
    if table == "string":
        exact = row["exact"]
        out = [[(":exact", esc(exact))]]
        if len(exact) < 255 and row["norm"]:
            out.append([("", esc(exact))])
        return out
    if table == "token":
        tv = token_value(row)
        return [[tv]] if tv else None
    if table == "reference":
        if row["target_id"] is not None:
            return [[("", f"{row['target_type']}/{esc(row['target_id'])}" if row["target_type"] else esc(row["target_id"]))]]
        if row["url"] is not None:
            return [[("", esc(row["url"]))]]
        return [[(":missing", "false")]]
    if table == "date":
        pairs = []
        if row["low"] != MIN_US:
            pairs.append(("", "ge" + to_instant(row["low"])))
        if row["high"] != MAX_US:
            pairs.append(("", "le" + to_instant(row["high"])))
        return [pairs] if pairs else None
    if table in ("number", "quantity"):
        unit = ""
        if table == "quantity" and (row["system"] or row["code"]):
            unit = "|" + esc(row["system"] or "") + "|" + esc(row["code"] or "")
        if row["low"] == row["high"]:
            return [[("", _num(row["value"]) + unit)]]
        if row["low"] != -BIG:
            return [[("", "ge" + _num(row["low"]) + unit)]]
        return [[("", "le" + _num(row["high"]) + unit)]]
    if table == "uri":
        return [[("", esc(row["uri"]))]]
    return None


def component_value(table: str, row: dict) -> str | None:
    if table == "token":
        tv = token_value(row)
        return tv[1] if tv and not tv[0] else None
    found = queries(table, row)
    if not found or len(found[0]) != 1 or found[0][0][0]:
        return None
    return found[0][0][1]


def checks_for(res: dict) -> list[tuple[str, list[tuple[str, str]]]]:
    names = _hash_names(res["resourceType"])
    plain: dict[str, list] = defaultdict(list)
    groups: dict[tuple[str, int], dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
    for table, rows in extract(res).items():
        for row in rows:
            if table == "compartment":
                continue
            code, family, comp = names[row["param"]]
            if family == "$":
                value = component_value(table, row)
                if value is not None:
                    groups[(code, row["grp"])][comp].append(value)
                continue
            if family == "$word":
                continue
            if family == ":word":  # a plain search from that word on finds the resource
                plain[code].append([("", esc(row["norm"]))])
                continue
            if family == ":of-type":
                system = row["system"] or ""
                type_code, _, ident = row["code"].partition("|")
                plain[code].append([(":of-type", f"{esc(system)}|{esc(type_code)}|{esc(ident)}")])
                continue
            for q in queries(table, row) or ():
                if family == ":identifier":
                    if q[0][0] == "":
                        plain[code].append([(":identifier", q[0][1])])
                else:
                    plain[code].append(q)
    out = []
    for code, qs in plain.items():
        for q in qs[:VALUES_PER_PARAM]:
            out.append((code, [(code + mod, value) for mod, value in q]))
    seen_composite: dict[str, int] = defaultdict(int)
    for (code, _grp), comps in groups.items():
        n = len(get_registry().get(res["resourceType"], code).components)
        if len(comps) == n and seen_composite[code] < VALUES_PER_PARAM:
            seen_composite[code] += 1
            out.append((code, [(code, "$".join(comps[i][0] for i in range(n)))]))
    return out


async def test_every_example_is_found_by_its_own_values(db):
    examples = official_examples()
    assert len(examples) == 742
    async with db.begin() as conn:
        items = []
        for res in examples:
            rid = (
                await conn.execute(
                    insert(resource)
                    .values(res_type=res["resourceType"], res_id=res["id"], version_id=1,
                            last_updated=1_700_000_000_000_000, deleted=False, content=orjson.dumps(res))
                    .returning(resource.c.rid)
                )
            ).scalar_one()
            items.append((rid, res))
        await index_resources(conn, items, fresh=True)

    failures, checked, params = [], 0, set()
    async with db.connect() as conn:
        for rid, res in items:
            for code, pairs in checks_for(res):
                query = pairs + [("_id", res["id"])]
                try:
                    got = await find_matches(conn, res["resourceType"], query, limit=2)
                except Exception as exc:  # a parser refusing our own value is a failure too
                    failures.append((res["resourceType"], res["id"], query, repr(exc)))
                    continue
                checked += 1
                params.add((res["resourceType"], code))
                if got != [(rid, res["id"])]:
                    failures.append((res["resourceType"], res["id"], query, got))
    print(f"{checked} searches over {len(params)} (type, parameter) pairs")
    assert checked > 5000 and len(params) > 1000
    for f in failures:
        print("FAIL", f)
    assert failures == []
