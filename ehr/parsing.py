"""Turning request bodies into resources, with every problem reported as FHIR wants.

Order of checks (fixed, so clients always see the first class of error first):
1. the bytes are JSON (400 structure), 2. the JSON is a resource of a known type (400 invalid),
3. it is the type/id the URL names (400 invalid), 4. it conforms to the base spec's structure
(422 processing, one issue per problem, each with the FHIRPath of the element).
"""
from __future__ import annotations

from functools import lru_cache

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from ehr.outcome import FHIRError, Issue


def parse_json(body: bytes) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise FHIRError.of(400, "structure", f"The body is not valid JSON: {exc}") from None


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
    """Raise 422 with one issue per problem if ``resource`` breaks the base spec's structure."""
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


def check_resource(
    data: object, *, expected_type: str | None = None, url_id: str | None = None, where: str = ""
) -> dict:
    """Validate an already-decoded resource. ``where`` prefixes expressions (bundle entries)."""
    if not isinstance(data, dict):
        raise FHIRError.of(400, "structure", "A resource must be a JSON object", where or None)
    res_type = data.get("resourceType")
    if not isinstance(res_type, str) or not is_resource_type(res_type):
        raise FHIRError.of(
            400, "invalid", f"Unknown or missing resourceType {res_type!r}", f"{where}resourceType" if where else "resourceType"
        )
    if expected_type is not None and res_type != expected_type:
        raise FHIRError.of(
            400, "invalid", f"The resource is a {res_type}, the URL names {expected_type}", f"{res_type}.resourceType"
        )
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
    try:
        check_structure(data, res_type)
    except FHIRError as err:
        if where:
            err.issues = [
                Issue(i.code, i.diagnostics, i.severity, tuple(where + e for e in i.expression)) for i in err.issues
            ]
        raise
    return data
