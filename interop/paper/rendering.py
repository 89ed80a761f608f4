"""Turning a letter into a print-ready HTML page, and what a client may ask for.

One Jinja2 environment (autoescape on, undefined names are errors) over ``templates/``: a base
layout prints the letter once per language, each time with a ``Section`` that knows its
language, direction and how to write words, amounts and dates in it.  Values that must keep
their left-to-right order inside Arabic text (amounts, dates, identifiers, Latin names) are
isolated in ``<bdi>``.

Only HTML is served: ``Accept`` (or ``_format``) that allows no HTML gets 406.  A server-side
PDF would need an engine with Arabic shaping and bidi line breaking — WeasyPrint needs Pango
(system libraries), the pure-Python options (xhtml2pdf, fpdf2) still break RTL paragraphs or
need a second, hand-drawn layout of each letter — so the counter prints the page, or saves it
as PDF, from the browser, whose text engine handles Arabic.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from ehr.outcome import FHIRError
from interop.paper.catalogue import CURRENCY, DIRECTION, LANGUAGES, TEXTS, Bilingual
from interop.paper.formatting import NBSP, amount, day

HTML = "text/html"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/*", "*/*"})
# Inline styles only: nothing external, nothing executable.
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_env = Environment(
    loader=PackageLoader("interop.paper", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _isolated(value: object, direction: str | None = None) -> Markup:
    attr = Markup(f' dir="{direction}"') if direction else Markup("")
    return Markup("<bdi{}>{}</bdi>").format(attr, value)


@dataclass(frozen=True)
class Section:
    """One language's copy of a letter."""

    lang: str

    @property
    def dir(self) -> str:
        return DIRECTION[self.lang]

    @property
    def comma(self) -> str:
        return "، " if self.lang == "ar" else ", "

    def t(self, key: str, **values: object) -> Markup:
        """A catalogue text; values are escaped unless already markup (amounts, dates)."""
        return escape(TEXTS[key].get(self.lang)).format(**values)

    def pick(self, value: Bilingual | None) -> Markup:
        """A value read from the data, in this language (isolated: names may be in the other script)."""
        return _isolated(value.get(self.lang)) if value is not None else Markup("")

    def money(self, value: Decimal | None) -> Markup:
        if value is None:
            return Markup("")
        return Markup("{}{}{}").format(_isolated(amount(value), "ltr"), NBSP, CURRENCY.get(self.lang))

    def day(self, value) -> Markup:
        return _isolated(day(value), "ltr") if value else Markup("")

    def ltr(self, value: object) -> Markup:
        """Codes, numbers, references: always left to right."""
        return _isolated(value, "ltr")


def negotiate(request) -> None:
    """406 unless the client accepts HTML (no ``Accept`` at all means anything)."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        if fmt.split(";")[0].strip().lower() not in ("html", "text/html"):
            raise _not_acceptable(f"_format={fmt}", "http._format")
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((p.split("=", 1)[1] for p in params if p.replace(" ", "").startswith("q=")), "1")
        try:
            accepted = float(q) > 0
        except ValueError:
            accepted = False
        if accepted and media.lower() in HTML_TYPES:
            return
    raise _not_acceptable(accept, "http.Accept")


def _not_acceptable(asked: str, where: str) -> FHIRError:
    return FHIRError.of(
        406, "not-supported",
        f"Cette lettre est servie en HTML (text/html; charset=utf-8), prête à imprimer en A4, et non en « {asked} » : "
        "le serveur ne produit pas de PDF ; imprimez la page, ou enregistrez-la en PDF, depuis le navigateur",
        where,
    )


def render(template: str, **context: object) -> bytes:
    page = _env.get_template(template).render(sections=[Section(lang) for lang in LANGUAGES], **context)
    return page.encode("utf-8")


def html_response(body: bytes, filename: str) -> Response:
    return Response(
        content=body, status_code=200, media_type=f"{HTML}; charset=utf-8",
        headers={"Content-Security-Policy": CSP, "Content-Disposition": f'inline; filename="{filename}.html"'},
    )
