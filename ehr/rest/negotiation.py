"""Which representation a request asks for, and the edge that serves it.

FHIR JSON is the server's own form.  Packages add others (``ehr.hooks.representations``: FHIR
XML); ``_format`` wins over ``Accept`` (FHIR http.html#mime-type), ``Accept`` is read with its
q-values (an explicit type beats a wildcard of the same q, then the first listed wins), and
nothing acceptable is 406.  Responses are converted from FHIR JSON on their way out by a pure
ASGI middleware (no per-request task), so every endpoint, error and operation answers in the
chosen form without knowing it; request bodies are converted to FHIR JSON by ``read_body``.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders

from ehr import hooks
from ehr.hooks import Representation
from ehr.outcome import FHIRError, Issue, outcome_bytes

log = logging.getLogger("sijill")

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "application/json+fhir", "text/json"})
FORMAT_JSON = JSON_TYPES | {"json"}
_WILDCARDS = frozenset({"*/*", "application/*", ""})


def _media(value: str) -> str:
    # ``_format=application/fhir+xml`` unquoted in a URL arrives with a space for the "+".
    return value.split(";")[0].strip().lower().replace(" ", "+")


def _spoken() -> str:
    return ", ".join([FHIR_JSON] + [r.media_type for r in hooks.representations])


def for_content_type(media: str) -> Representation | None:
    """The representation a request body of this Content-Type is in (None: JSON or unknown)."""
    return next((r for r in hooks.representations if media in r.media_types), None)


def chosen(fmt: str | None, accept: str | None) -> Representation | None:
    """The representation asked for (None: FHIR JSON); 406 when none can be served."""
    if fmt is not None:
        media = _media(fmt)
        if media in FORMAT_JSON:
            return None
        for rep in hooks.representations:
            if media == rep.format or media in rep.media_types:
                return rep
        raise FHIRError.of(406, "not-supported", f"_format {fmt!r} is not supported; use json"
                           + "".join(f" or {r.format}" for r in hooks.representations), "http._format")
    if not accept:
        return None
    best: Representation | None = None
    best_score: tuple | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = part.split(";")
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if not q > 0:  # q=0 (and nan): not acceptable
            continue
        media = _media(media)
        if media in JSON_TYPES or media.endswith("+json"):
            target, specificity = None, 2
        elif media in _WILDCARDS:
            target, specificity = None, 0
        else:
            served = for_content_type(media)
            if served is None:
                continue
            target, specificity = served, 2
        score = (q, specificity, -position)
        if best_score is None or score > best_score:
            best, best_score = target, score
    if best_score is None:
        raise FHIRError.of(406, "not-supported", f"Cannot produce any of {accept!r}; this server speaks {_spoken()}")
    return best


def _requested(scope) -> Representation | None:
    query = scope.get("query_string", b"")
    fmt = None
    if b"_format" in query:
        fmt = next((v for k, v in parse_qsl(query.decode("latin-1")) if k == "_format"), None)
    accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
    try:
        return chosen(fmt, accept)
    except FHIRError:
        return None  # the endpoint answers 406, in JSON


class RepresentationMiddleware:
    """Converts FHIR JSON responses under /fhir to the representation the request chose."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not hooks.representations or not scope["path"].startswith("/fhir"):
            return await self.app(scope, receive, send)
        rep = _requested(scope)
        if rep is None:
            return await self.app(scope, receive, send)
        start: dict | None = None
        chunks: list[bytes] = []

        async def converting(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                if MutableHeaders(scope=message).get("content-type", "").startswith(FHIR_JSON):
                    start = message  # held until the whole body is there
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                message = {"type": "http.response.body", "body": _converted(rep, start, b"".join(chunks))}
                await send(start)
            await send(message)

        await self.app(scope, receive, converting)


def _converted(rep: Representation, start: dict, body: bytes) -> bytes:
    try:
        out = rep.from_json(body) if body else body
    except ValueError as exc:  # stored JSON the format cannot carry: say so rather than fail
        log.warning("a response could not be converted to %s: %s", rep.media_type, exc)
        start["status"] = 406
        out = rep.from_json(outcome_bytes([Issue("not-supported", f"This answer cannot be given as {rep.media_type}; "
                                                 f"ask for {FHIR_JSON}")]))
    headers = MutableHeaders(scope=start)
    headers["content-type"] = rep.media_type
    headers["content-length"] = str(len(out))
    return out
