"""Logs: the request id of the work in progress on every line it writes, and one set-up for
the API, the worker and the command line (JSON lines from ``ehr.security.middleware``).

The access-log middleware (``ehr.security.middleware``) sets it per request from a sane
incoming ``X-Request-ID`` or a fresh one; ``RequestIdFilter`` copies it onto each log record,
so lines logged deep in a request (errors included) carry it without passing it around.
"""
from __future__ import annotations

import logging
import uuid
from contextvars import ContextVar

from ehr.settings import Settings

request_id: ContextVar[str | None] = ContextVar("sijill_request_id", default=None)


def sane_request_id(incoming: str | None) -> str:
    """The caller's id when it is short and plain (letters, digits, dashes), else a new one:
    a log line must not carry whatever a client puts in a header."""
    if incoming and len(incoming) <= 64 and incoming.replace("-", "").isalnum() and incoming.isascii():
        return incoming
    return uuid.uuid4().hex


class RequestIdFilter(logging.Filter):
    """Adds the current request id to records that do not name one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


def setup_logging(settings: Settings) -> None:
    """JSON lines (whitelisted fields, no clinical data) unless ``log_json`` is off (tests)."""
    from ehr.security.middleware import configure_logging

    if settings.log_json:
        configure_logging(settings.log_level)
    else:
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
