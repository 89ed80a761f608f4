"""The language of the current request (from Accept-Language), for messages in French or Arabic.

A pure ASGI middleware sets a context variable; code deep in the service layer (validators)
reads it without HTTP reaching down.
"""
from __future__ import annotations

from contextvars import ContextVar

_language: ContextVar[str] = ContextVar("sijill_language", default="fr")
SUPPORTED = ("fr", "ar", "en")


def current_language() -> str:
    return _language.get()


def pick(accept_language: str | None) -> str:
    """The first supported language the client asks for; French, the administration's, otherwise."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower().split("-")[0]
        if tag in SUPPORTED:
            return tag
    return "fr"


class LanguageMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept-language"), None)
        token = _language.set(pick(header))
        try:
            await self.app(scope, receive, send)
        finally:
            _language.reset(token)
