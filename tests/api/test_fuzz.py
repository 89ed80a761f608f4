"""No 500 on any input, kept true by a fuzzer (issue 12): seeded (``derandomize``: the same
requests every run), bounded (a few hundred in all), against the in-process app as the
unrestricted caller (it tests the parsers, not access).  Whatever comes in — a search over every
parameter type of a few resource types with modifiers, prefixes and result parameters, an id, a
body mutated from a valid resource, a header — the answer is never 5xx, every 4xx carries an
OperationOutcome whose issues have a code, and a refused write writes nothing.  Both databases.
"""
from __future__ import annotations

import json
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ehr.search.registry import get_registry
from interop.fhirxml.reader import parse
from interop.fhirxml.writer import json_to_xml
from tests.api.helpers import observation, patient



def fuzz(examples: int) -> settings:
    # One app for all the examples of a test (its fixtures are made once): the fuzzer looks for
    # answers, and what one example writes is only more data for the next ones.
    return settings(derandomize=True, database=None, deadline=None, print_blob=False, max_examples=examples,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


TYPES = ("Patient", "Observation", "Encounter", "RiskAssessment", "Claim")

# --- pieces of text a parser meets ------------------------------------------------------------

NASTY = st.sampled_from(["\x00", "\x01", "\x1f", "%00", "%", "%ZZ", "|", "||", "$", ",", ":", "'", '"', "\\", "\ufffd",
                         "\u202e", "حداد", "é", "😀", " ", "", "null", "true", "-", "*", "?", "#", "&", "="])
NUMBER = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["1e400", "-1e400", "1e-400", "NaN", "Infinity", "0x10", "1_000", "1.", ".5", "١٢", "²", "99999999999999999999",
                     "9223372036854775808", "-0", "1e308", "0.000000000000000000000001"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)
DATE = st.one_of(
    st.sampled_from(["9999-12-31", "9999-12-31T23:59:59.9999999Z", "9999", "9999-12", "0001-01-01T00:00:00+14:00",
                     "0001", "0000", "2024-02-30", "2024-13", "2024-01-01T25:00", "2024-01-01T10:00:00+15:00",
                     "2024-01-01T10:00:00.123456789Z", "20240101", "2024-1-1", "now"]),
    st.dates().map(lambda d: d.isoformat()),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
)
PREFIX = st.sampled_from(["", "eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap", "xx"])
TEXT = st.one_of(st.text(max_size=20), NASTY, st.text(alphabet=st.characters(max_codepoint=0x20), max_size=5))
ID = st.one_of(st.from_regex(r"[A-Za-z0-9\-.]{1,64}", fullmatch=True), TEXT, st.just("a" * 65),
               st.integers(min_value=0, max_value=2**80).map(str))
TOKEN = st.one_of(TEXT, st.tuples(TEXT, TEXT).map("|".join), st.just("|"), st.tuples(TEXT, TEXT, TEXT).map("|".join))
MODIFIER = st.sampled_from(["", ":missing", ":exact", ":contains", ":text", ":not", ":above", ":below", ":in", ":not-in",
                            ":of-type", ":identifier", ":iterate", ":Patient", ":nope", ":", "::"])


def _value(kind: str) -> st.SearchStrategy[str]:
    if kind == "date":
        return st.tuples(PREFIX, DATE).map("".join)
    if kind == "number":
        return st.tuples(PREFIX, NUMBER).map("".join)
    if kind == "quantity":
        return st.tuples(PREFIX, NUMBER, TOKEN).map(lambda t: f"{t[0]}{t[1]}|{t[2]}")
    if kind == "reference":
        return st.one_of(st.tuples(st.sampled_from(TYPES + ("Nope", "")), ID).map("/".join), ID,
                         st.just("http://x.ma/fhir/Patient/1"))
    if kind == "composite":
        return st.tuples(TOKEN, st.one_of(NUMBER, TOKEN, DATE)).map("$".join)
    return st.one_of(TOKEN, TEXT)


def _parameter(res_type: str) -> st.SearchStrategy[tuple[str, str]]:
    params = sorted(get_registry().for_type(res_type).values(), key=lambda p: p.code)
    by_type: dict[str, list] = {}
    for p in params:
        by_type.setdefault(p.type, []).append(p)
    # a type first, then one of its parameters: every type is met as often, however few it has
    typed = st.sampled_from(sorted(by_type)).flatmap(lambda kind: st.sampled_from(by_type[kind])).flatmap(
        lambda p: st.tuples(MODIFIER.map(lambda m: p.code + m), _value(p.type)))
    result = st.one_of(
        st.tuples(st.sampled_from(["_count", "_offset"]), NUMBER),
        st.tuples(st.just("_sort"), st.one_of(st.sampled_from([f"-{p.code}" for p in params] + [p.code for p in params]), TEXT)),
        st.tuples(st.sampled_from(["_include", "_revinclude", "_include:iterate"]),
                  st.one_of(st.sampled_from([f"{res_type}:{p.code}" for p in params if p.type == "reference"] + ["*"]), TEXT)),
        st.tuples(st.sampled_from(["_summary", "_elements", "_total", "_contained", "_format", "_type", "_id", "_lastUpdated"]), TEXT),
        st.tuples(st.sampled_from([f"subject:Patient.{p}" for p in ("name", "birthdate", "_id")] + ["_has:Observation:subject:code"]),
                  TOKEN),
    )
    return st.one_of(typed, result, st.tuples(TEXT, TEXT))


SEARCH = st.sampled_from(TYPES).flatmap(lambda t: st.tuples(st.just(t), st.lists(_parameter(t), min_size=1, max_size=4)))


def _check(resp, what: object) -> None:
    assert resp.status_code < 500, f"{resp.status_code} for {what!r}: {resp.text[:500]}"
    if resp.status_code >= 400:
        xml = resp.headers.get("content-type", "").startswith("application/fhir+xml")
        body = parse(resp.content) if xml else resp.json()  # Accept: application/fhir+xml is answered in XML
        assert body["resourceType"] == "OperationOutcome", (what, body)
        assert body["issue"] and all(i.get("code") for i in body["issue"]), (what, body)


async def _versions(client) -> int:
    return (await client.get("/_history", params={"_total": "accurate", "_count": "0"})).json()["total"]


@fuzz(150)
@given(SEARCH, st.booleans())
async def test_searches_over_every_parameter_type_never_fail(client, search, as_form):
    res_type, params = search
    if as_form:
        form = "&".join(f"{k}={v}" for k, v in params).encode("utf-8", "surrogatepass")
        resp = await client.post(f"/{res_type}/_search", content=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        resp = await client.get(f"/{res_type}", params=params)
    _check(resp, search)


# --- bodies: valid resources, mutated ---------------------------------------------------------

ODD = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70), st.floats(allow_nan=False, allow_infinity=False),
    TEXT, st.just([]), st.just({}), st.just([[[]]]), st.just({"resourceType": "Nope"}), st.just("9999-12-31"),
)


def _paths(value: object, path: tuple = ()) -> list[tuple]:
    found = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, path + (i,))
    return found


def _set(value: object, path: tuple, new: object) -> object:
    if not path:
        return new
    copy = orjson.loads(orjson.dumps(value))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = new
    return copy


def _nested(depth: int) -> dict:
    inner: dict = {"url": "https://x.ma/e", "valueString": "y"}
    for _ in range(depth):
        inner = {"url": "https://x.ma/e", "extension": [inner]}
    return inner


@st.composite
def bodies(draw) -> tuple[str, bytes]:
    res = draw(st.sampled_from([patient(), observation("Patient/p1"), {"resourceType": "Encounter", "status": "planned",
                                                                      "class": {"code": "AMB"}}]))
    mutation = draw(st.sampled_from(["leaf", "drop", "unknown", "deep", "contained", "number", "bytes", "type", "nul"]))
    if mutation == "leaf":
        res = _set(res, draw(st.sampled_from(_paths(res))), draw(ODD))
    elif mutation == "drop":
        res = {k: v for k, v in res.items() if k != draw(st.sampled_from(sorted(res)))}
    elif mutation == "unknown":
        res = {**res, draw(TEXT): draw(ODD)}
    elif mutation == "deep":
        res = {**res, "extension": [_nested(draw(st.integers(min_value=40, max_value=400)))]}
    elif mutation == "contained":
        res = {**res, "contained": [{"resourceType": draw(st.sampled_from(["Patient", "Nope", "", "Bundle"])), "id": "c",
                                     **draw(st.sampled_from([{}, {"contained": [{"resourceType": "Patient"}]}]))}]}
    elif mutation == "type":
        res = {**res, "resourceType": draw(st.one_of(TEXT, st.sampled_from(["Bundle", "Observation", "Resource"])))}
    text = json.dumps(res).encode()  # the standard library's: orjson stops at 255 levels
    if mutation == "number":
        text = text.replace(b"{", b'{"valueDecimal":' + draw(NUMBER).encode("utf-8") + b",", 1)
    elif mutation == "bytes":
        at = draw(st.integers(min_value=0, max_value=len(text)))
        text = text[:at] + draw(st.binary(min_size=1, max_size=4)) + text[at:]
    elif mutation == "nul":
        text = text.replace(b'"', b'"\\u0000', draw(st.integers(min_value=1, max_value=6)))
    return res.get("resourceType") if isinstance(res.get("resourceType"), str) else "Patient", text


@fuzz(120)
@given(bodies(), st.sampled_from(["POST", "PUT", "transaction"]))
async def test_mutated_bodies_are_taken_or_refused_never_half_written(client, body, how):
    res_type, text = body
    res_type = res_type if res_type.isalpha() and res_type.isascii() else "Patient"
    before = await _versions(client)
    if how == "transaction":
        entry = b'{"request":{"method":"POST","url":"' + res_type.encode() + b'"},"resource":' + text + b"}"
        resp = await client.post("/", content=b'{"resourceType":"Bundle","type":"transaction","entry":[' + entry + b"]}")
    elif how == "PUT":
        resp = await client.put(f"/{res_type}/fuzz-1", content=text)
    else:
        resp = await client.post(f"/{res_type}", content=text)
    _check(resp, text[:300])
    if resp.status_code >= 400:
        assert await _versions(client) == before, text[:300]


# --- ids and headers ------------------------------------------------------------------------

HEADERS = st.fixed_dictionaries({}, optional={
    "Content-Type": st.sampled_from(["application/fhir+json", "application/json", "text/plain", "application/xml",
                                     "application/fhir+json; charset=latin-1", "", "multipart/form-data; boundary=x",
                                     "application/x-www-form-urlencoded", "application/json-patch+json"]),
    "If-Match": st.one_of(st.sampled_from(['W/"1"', 'W/"99999999999999999999"', '"1"', "*", "W/", 'W/"²"', 'W/"-1"']), TEXT),
    "If-None-Exist": st.one_of(st.just("identifier=x%00"), st.just("_id=1"), TEXT),
    "If-None-Match": st.one_of(st.just("*"), TEXT),
    "If-Modified-Since": st.one_of(st.just("Fri, 31 Dec 9999 23:59:59 GMT"), TEXT),
    "Prefer": st.one_of(st.sampled_from(["return=minimal", "return=OperationOutcome", "handling=strict", "return=nope",
                                         "respond-async"]), TEXT),
    "Accept": st.one_of(st.sampled_from(["application/fhir+xml", "*/*", "text/html", "application/fhir+json;q=0"]), TEXT),
}).map(lambda h: {k: v for k, v in h.items() if all(32 <= ord(c) < 127 for c in v)})


# Addresses with an id, a version, a cursor or a date in them: {id} {n} {date} filled in below.
ADDRESSES = st.sampled_from([
    "{type}/{id}", "{type}/{id}/_history", "{type}/{id}/_history/{n}", "{type}/{id}/$everything", "{type}/{id}/$validate",
    "_history?_cursor={n}", "_history?_count={n}", "{type}/_history?_since={date}", "_history?_at={date}",
    "Patient/{id}/$everything?_cursor={n}&_since={date}", "Organization/{id}/$sla?date={date}",
])


@fuzz(120)
@given(st.sampled_from(["GET", "GET", "GET", "PUT", "DELETE", "PATCH", "POST"]), st.sampled_from(TYPES), ADDRESSES, ID,
       st.one_of(NUMBER, ID), DATE)
async def test_ids_versions_cursors_and_dates_in_addresses_never_fail(client, method, res_type, address, res_id, number, date):
    url = "/" + address.format(type=res_type, id=quote(res_id, safe=""), n=quote(number, safe=""), date=quote(date, safe=""))
    resp = await client.request(method, url, content=_body(method, res_id))
    _check(resp, (method, url))


@fuzz(80)
@given(st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "POST"]), st.sampled_from(["/Patient/p1", "/Patient", "/"]), HEADERS)
async def test_headers_never_fail(client, method, url, headers):
    resp = await client.request(method, url, content=_body(method, "p1"), headers=headers)
    _check(resp, (method, url, headers))


def _body(method: str, res_id: str) -> bytes | None:
    if method == "PATCH":
        return b'[{"op":"replace","path":"/gender","value":"male"}]'
    return orjson.dumps({**patient(), "id": res_id}) if method in ("PUT", "POST") else None


@fuzz(100)
@given(bodies(), st.sampled_from(["none", "bytes", "cut", "doctype", "namespace", "entity"]), st.data())
async def test_mutated_xml_bodies_are_taken_or_refused_never_half_written(client, body, damage, data):
    res_type, text = body
    res_type = res_type if res_type.isalpha() and res_type.isascii() else "Patient"
    try:
        xml = json_to_xml(text)  # the mutated resource in XML, where XML can carry it
    except (ValueError, RecursionError):
        xml = text
    if damage == "bytes":
        at = data.draw(st.integers(min_value=0, max_value=len(xml)))
        xml = xml[:at] + data.draw(st.binary(min_size=1, max_size=4)) + xml[at:]
    elif damage == "cut":
        xml = xml[:data.draw(st.integers(min_value=0, max_value=len(xml)))]
    elif damage == "doctype":
        xml = b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>' + xml.split(b"?>", 1)[-1]
    elif damage == "namespace":
        xml = xml.replace(b"http://hl7.org/fhir", data.draw(st.sampled_from([b"", b"urn:x", b"http://hl7.org/fhir/"])), 1)
    elif damage == "entity":
        xml = xml.replace(b'value="', b'value="&' + data.draw(st.sampled_from([b"amp;", b"lt;", b"#0;", b"#x1;", b"nbsp;", b"x"])), 1)
    before = await _versions(client)
    resp = await client.post(f"/{res_type}", content=xml, headers={"Content-Type": "application/fhir+xml"})
    _check(resp, xml[:300])
    if resp.status_code >= 400:
        assert await _versions(client) == before, xml[:300]
