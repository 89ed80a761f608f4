"""GET /fhir/metadata: the CapabilityStatement, generated from what is registered."""
from __future__ import annotations

from functools import lru_cache

import orjson
from fastapi import APIRouter

from ehr import hooks
from ehr.interactions.context import APPEND_ONLY_TYPES
from ehr.operations.registry import registered
from ehr.rest.http import AppSettings, fhir_response
from ehr.search.limits import SearchLimits
from ehr.search.registry import SearchParam, get_registry
from ehr.security.audit_api import DECLARED_PARAMS as AUDIT_TRAIL_PARAMS
from ehr.settings import Settings
from ehr.store.clock import now_us, to_instant

router = APIRouter()

_TYPE_INTERACTIONS = ["read", "vread", "update", "patch", "delete", "history-instance", "history-type", "create", "search-type"]
_REWRITES = {"update", "patch", "delete"}

# Extra blocks (e.g. rest.security) contributed by other packages at start-up.
_EXTENSIONS: dict[str, object] = {}


def contribute(key: str, value: object) -> None:
    _EXTENSIONS[key] = value
    capability_statement.cache_clear()


STRING_MATCHING = (
    "Matches the start of any word of the value, ignoring case, accents, Arabic harakat and letter variants, "
    "and the Arabic article (name=haddad finds \"El Haddad\", name=حداد finds \"الحداد\"); "
    ":exact is the whole value as written, :contains any part of it."
)


def _search_param(p: SearchParam) -> dict:
    declared = {"name": p.code, "definition": p.url, "type": p.type}
    if p.type == "string":
        declared["documentation"] = STRING_MATCHING
    return declared


def _resource_entry(res_type: str, params: dict) -> dict:
    ops = [
        {"name": op.name, "definition": op.definition}
        for op in registered()
        if ({"type", "instance"} & op.levels) and (op.types is None or res_type in op.types)
    ]
    entry = {
        "type": res_type,
        "interaction": [{"code": c} for c in _TYPE_INTERACTIONS],
        "versioning": "versioned",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "not-supported",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "referencePolicy": ["literal", "logical"],
        "searchInclude": ["*"] + sorted(f"{res_type}:{p.code}" for p in params.values() if p.type == "reference"),
        "searchRevInclude": ["*"],
        "searchParam": [_search_param(p) for p in sorted(params.values(), key=lambda p: p.code) if p.url],
    }
    if res_type in APPEND_ONLY_TYPES:  # 405 for every caller (ehr.interactions.context)
        entry["interaction"] = [i for i in entry["interaction"] if i["code"] not in _REWRITES]
        entry.update(updateCreate=False, conditionalUpdate=False, conditionalDelete="not-supported")
    if res_type == "AuditEvent":
        _audit_trail_entry(entry)
    if ops:
        entry["operation"] = ops
    return entry


def _audit_trail_entry(entry: dict) -> None:
    """``AuditEvent`` searches are answered from the audit log (ehr.security.audit_api): only
    its indexed columns are searchable, without _include/_revinclude."""
    entry["searchParam"] = [p for p in entry["searchParam"] if p["name"] in AUDIT_TRAIL_PARAMS]
    entry["searchInclude"], entry["searchRevInclude"] = [], []
    entry["documentation"] = (
        "The server's own audit trail, append-only: searched by _id, patient and date (newest first); "
        "a patient sees the events about themselves and their dependants."
    )


def limits_documentation(settings: Settings) -> str:
    """The cost limits a client must stay within (rest.documentation; docs/operations.md)."""
    timeout = f"{settings.statement_timeout_ms} ms" if settings.statement_timeout_ms else "none"
    return (
        f"Limits. {SearchLimits.of(settings).as_text()} Bundles: at most {settings.max_bundle_entries} entries "
        f"and {settings.max_bundle_searches} searches (413 too-costly). Pages: _count up to {settings.max_page_size}. "
        f"Request bodies: {settings.max_body_bytes} bytes. Database statement timeout: {timeout} (503 too-costly). "
        "Contention and outages answer 503 transient with Retry-After: retry."
    )


@lru_cache(maxsize=4)
def capability_statement(base_url: str, documentation: str) -> bytes:
    registry = get_registry()
    rest: dict = {
        "mode": "server",
        "documentation": documentation,
        "resource": [_resource_entry(t, registry.for_type(t)) for t in sorted(registry.resource_types)],
        "interaction": [{"code": c} for c in ("transaction", "batch", "search-system", "history-system")],
        "operation": [{"name": op.name, "definition": op.definition} for op in registered() if "system" in op.levels],
    }
    if not rest["operation"]:
        del rest["operation"]
    if "security" in _EXTENSIONS:
        rest["security"] = _EXTENSIONS["security"]
    cs = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": to_instant(now_us())[:10],
        "publisher": "Sijill",
        "kind": "instance",
        "software": {"name": "Sijill", "version": "0.1.0"},
        "implementation": {"description": "Sijill FHIR server for AMO (Morocco)", "url": base_url},
        "fhirVersion": "4.3.0",
        "format": ["application/fhir+json", "json"] + [f for r in hooks.representations for f in (r.media_type, r.format)],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    }
    return orjson.dumps(cs)


@router.get("/fhir/metadata")
async def metadata(settings: AppSettings):
    return fhir_response(capability_statement(settings.base_url, limits_documentation(settings)))
