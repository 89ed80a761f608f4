"""Turning request bodies, query strings and forms into values, with every problem reported as
FHIR wants: this is the edge every input crosses, so malformed input is refused here (4xx), never
left to fail deeper down (a 500) or stripped silently.

Order of checks of a body (fixed, so clients always see the first class of error first):
1. the bytes are JSON, at most ``MAX_JSON_DEPTH`` levels deep, with no control character in a
string (400 structure / invalid), 2. the JSON is a resource of a known type (400 invalid),
3. it is the type/id the URL names, its id a string (400 invalid / structure), 4. its contained resources are of known types
and contain none themselves (422).  Conformance to the base definition (cardinality, types,
formats, bindings, invariants, narrative) is checked once per write, by ``ehr.hooks.conform``.

``check_structure`` (the R4B pydantic models) is not on the write path: the tests use it as an
oracle for what the server generates, and terminology loading for content read from files.
"""
from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from ehr.outcome import FHIRError, Issue


# FHIR strings hold no character below U+0020 but tab, LF and CR; PostgreSQL cannot even store NUL.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# How a control character can appear in JSON text (escaped: raw ones are not JSON).
_ESCAPED_CONTROL = re.compile(rb"\\u00(?:0[0-8bcBC]|0[eEfF]|1[0-9a-fA-F])")
# Objects and arrays inside one another: real resources, even in Bundles, stay far below; 300
# nested extensions or contained resources exhaust the validators' recursion (a 500 before).
MAX_JSON_DEPTH = 100
# What a signed 64-bit column holds (version ids, cursors, row ids).
MAX_BIGINT = 2**63 - 1


def check_text(value: str, expression: str) -> str:
    """Refuse a control character (NUL first of all) in a value received: 400 ``invalid``."""
    if _CONTROL.search(value):
        raise FHIRError.of(400, "invalid", f"{expression} holds a control character (U+0000 to U+001F other than "
                           "tab, line feed and carriage return): refused", expression)
    return value


def query_params(query: str, where: str = "http") -> list[tuple[str, str]]:
    """The name/value pairs of a query string (URL, form body, Bundle entry URL, If-None-Exist)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    for name, value in pairs:
        check_text(name, where)
        check_text(value, f"{where}.{name}")
    return pairs


def form_params(body: bytes) -> list[tuple[str, str]]:
    """A form-encoded body (``POST _search``): UTF-8 text of name=value pairs, else 400."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FHIRError.of(400, "structure", f"The form body is not UTF-8 text (byte {exc.start})", "http") from None
    return query_params(text)


def bigint(text: str) -> int | None:
    """``text`` as a non-negative integer that fits a 64-bit column, else None (ASCII digits only:
    ``"²".isdigit()`` is true, yet ``int("²")`` fails)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if value <= MAX_BIGINT else None


def parse_json(body: bytes) -> object:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FHIRError.of(400, "structure", f"The body is not valid JSON: {exc}") from None
    _check_json(data, _ESCAPED_CONTROL.search(body) is not None)
    return data


def _check_json(data: object, strings: bool) -> None:
    """Depth always; strings (and keys) only when the text holds an escaped control character."""
    found = _first_problem(data, 1, strings)
    if found is None:
        return
    problem, path = found
    root = data.get("resourceType") if isinstance(data, dict) else None
    steps = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in reversed(path))
    where = (root if isinstance(root, str) and root.isalpha() else "body") + steps
    if problem == "depth":
        raise FHIRError.of(400, "too-costly", f"The JSON nests objects and arrays deeper than {MAX_JSON_DEPTH} levels", where)
    check_text(problem, where)


def _first_problem(value: object, depth: int, strings: bool) -> tuple[str, list] | None:
    """("depth" or the offending string, its path from the leaf up), or None."""
    if isinstance(value, dict):
        items: object = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return (value, []) if strings and isinstance(value, str) and _CONTROL.search(value) else None
    if depth > MAX_JSON_DEPTH:
        return "depth", []
    for key, child in items:  # type: ignore[attr-defined]
        if strings and isinstance(key, str) and _CONTROL.search(key):
            return key, [repr(key)]
        found = _first_problem(child, depth + 1, strings)
        if found is not None:
            found[1].append(key)
            return found
    return None


@lru_cache(maxsize=None)
def _model(res_type: str):
    try:
        return get_fhir_model_class(res_type)
    except (KeyError, ValueError, AttributeError):
        return None


@lru_cache(maxsize=None)
def is_resource_type(name: str) -> bool:
    # Data types (HumanName…) have model classes too: only Resource subclasses count.
    from fhir.resources.R4B.resource import Resource

    model = _model(name) if name and name[0].isupper() else None
    return model is not None and issubclass(model, Resource) and name not in ("Resource", "DomainResource")


def _fhirpath(res_type: str, loc: tuple) -> str:
    path = res_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("__root__", "function-after", "function-before", "function-wrap"):
            continue
        else:
            path += f".{part}"
    return path


def _issue_code(error_type: str) -> str:
    if error_type == "extra_forbidden":
        return "structure"
    if error_type == "missing":
        return "required"
    return "value"


def check_structure(resource: dict, res_type: str) -> None:
    """The R4B models' verdict (see the module's docstring): raise 422 with one issue per problem if ``resource`` breaks the base spec's structure."""
    model = _model(res_type)
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "Unknown element"
            issues.append(Issue(_issue_code(err["type"]), msg, expression=(_fhirpath(res_type, loc),)))
        raise FHIRError(422, issues) from None
    except (ValueError, TypeError) as exc:  # model-level checks outside pydantic's error list
        raise FHIRError.of(422, "value", str(exc), res_type) from None


def parse_resource(body: bytes, *, expected_type: str | None = None, url_id: str | None = None) -> dict:
    data = parse_json(body)
    return check_resource(data, expected_type=expected_type, url_id=url_id)


def check_resource(data: object, *, expected_type: str | None = None, url_id: str | None = None) -> dict:
    """Check an already-decoded resource is one of the type and id expected (a Bundle entry's:
    located by ``ehr.outcome.in_entry``); its content is walked by ``ehr.hooks.conform``."""
    if not isinstance(data, dict):
        raise FHIRError.of(400, "structure", "A resource must be a JSON object")
    res_type = data.get("resourceType")
    if not isinstance(res_type, str) or not is_resource_type(res_type):
        raise FHIRError.of(400, "invalid", f"Unknown or missing resourceType {res_type!r}", "resourceType")
    if expected_type is not None and res_type != expected_type:
        raise FHIRError.of(
            400, "invalid", f"The resource is a {res_type}, the URL names {expected_type}", f"{res_type}.resourceType"
        )
    if not isinstance(data.get("id", ""), str):  # the id names the resource before its content is walked
        raise FHIRError.of(400, "structure", "The resource id must be a JSON string", f"{res_type}.id")
    if url_id is not None:
        from ehr.interactions.preconditions import check_id

        check_id(res_type, url_id)
        body_id = data.get("id")
        if body_id is None:
            raise FHIRError.of(400, "required", "The resource must carry the id named in the URL", f"{res_type}.id")
        if body_id != url_id:
            raise FHIRError.of(
                400, "invalid", f"The resource id {body_id!r} differs from the URL's {url_id!r}", f"{res_type}.id"
            )
    _check_contained(data, res_type)
    return data


def _check_contained(data: dict, res_type: str) -> None:
    """Contained resources of known types that contain nothing themselves (dom-2)."""
    contained = data.get("contained")
    if not isinstance(contained, list):
        return  # the structure check names what is wrong with it
    for i, inner in enumerate(contained):
        where = f"{res_type}.contained[{i}]"
        kind = inner.get("resourceType") if isinstance(inner, dict) else None
        if not isinstance(kind, str) or not is_resource_type(kind):
            raise FHIRError.of(422, "value", f"Unknown or missing resourceType {kind!r} of a contained resource",
                               f"{where}.resourceType")
        if "contained" in inner:
            raise FHIRError.of(422, "invariant", "A contained resource contains no resources itself (dom-2)",
                               f"{where}.contained")
