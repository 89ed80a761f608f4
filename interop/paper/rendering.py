"""Turning a letter into a print-ready HTML page, and what a client may ask for.

One Jinja2 environment (autoescape on, undefined names are errors) over ``templates/``: a base
layout prints the letter once per language, each time with a ``Section`` that knows its
language, direction and how to write words, amounts and dates in it.  Values that must keep
their left-to-right order inside Arabic text (amounts, dates, identifiers, Latin names) are
isolated in ``<bdi>``; a value written only in the section's own direction (a date in the French
copy, an Arabic name in the Arabic one) is not: it needs no isolation, and every isolate is one
more inline box for WeasyPrint to lay out.

Served as HTML or as PDF, by ``Accept`` (or ``_format=html|pdf``): the PDF is the same page
laid out by WeasyPrint (``interop.paper.pdf``), whose text engine (Pango, HarfBuzz) shapes
Arabic and breaks right-to-left paragraphs; anything else gets 406.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from decimal import Decimal

from fastapi.responses import Response
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from ehr.outcome import FHIRError
from interop.paper.catalogue import CURRENCY, DIRECTION, LANGUAGES, TEXTS, Bilingual
from interop.paper.formatting import NBSP, amount, day

HTML = "text/html"
PDF = "application/pdf"
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/*", "*/*"})
_FORMATS = {"html": HTML, "text/html": HTML, "pdf": PDF, PDF: PDF}
# Inline styles only: nothing external, nothing executable.
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_env = Environment(
    loader=PackageLoader("interop.paper", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


_RTL_CLASSES = frozenset({"R", "AL"})


def _isolated(value: object, direction: str | None = None, within: str | None = None) -> Markup:
    """``value`` in ``<bdi>`` (``direction``: its own, else found from its text), unless the text
    it sits ``within`` runs the same way as every letter of it."""
    if within is not None and _runs_only(str(value), within):
        return escape(value)
    attr = Markup(f' dir="{direction}"') if direction else Markup("")
    return Markup("<bdi{}>{}</bdi>").format(attr, value)


def _runs_only(text: str, direction: str) -> bool:
    """No strong character of ``text`` runs against ``direction`` (digits and signs have none,
    but in right-to-left text they still need isolating to keep their order)."""
    if direction == "rtl":
        return all(unicodedata.bidirectional(c) in _RTL_CLASSES or c == " " for c in text)
    return not any(unicodedata.bidirectional(c) in _RTL_CLASSES for c in text)


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
        return _isolated(value.get(self.lang), within=self.dir) if value is not None else Markup("")

    def money(self, value: Decimal | None) -> Markup:
        if value is None:
            return Markup("")
        return Markup("{}{}{}").format(self.ltr(amount(value)), NBSP, CURRENCY.get(self.lang))

    def day(self, value) -> Markup:
        return self.ltr(day(value)) if value else Markup("")

    def ltr(self, value: object) -> Markup:
        """Codes, numbers, references: always left to right."""
        return _isolated(value, "ltr", within=self.dir)


def negotiate(request) -> str:
    """The media type to answer (``HTML`` or ``PDF``), the client's most preferred of the two
    (no ``Accept`` at all means HTML); 406 if it accepts neither."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        media = _FORMATS.get(fmt.split(";")[0].strip().lower())
        if media is None:
            raise _not_acceptable(f"_format={fmt}", "http._format")
        return media
    accept = request.headers.get("accept")
    if not accept:
        return HTML
    offers = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = next((p.split("=", 1)[1] for p in params if p.replace(" ", "").startswith("q=")), "1")
        try:
            weight = float(q)
        except ValueError:
            weight = 0.0
        media = media.lower()
        served = PDF if media == PDF else HTML if media in HTML_TYPES else None
        if weight > 0 and served is not None:
            offers.append((-weight, position, served))
    if not offers:
        raise _not_acceptable(accept, "http.Accept")
    return min(offers)[2]


def _not_acceptable(asked: str, where: str) -> FHIRError:
    return FHIRError.of(
        406, "not-supported",
        f"Ce document est servi en HTML (text/html; charset=utf-8) ou en PDF (application/pdf), et non en « {asked} »",
        where,
    )


def render(template: str, **context: object) -> bytes:
    page = _env.get_template(template).render(sections=[Section(lang) for lang in LANGUAGES], **context)
    return page.encode("utf-8")


def document_response(body: bytes, media: str, filename: str) -> Response:
    """The page as asked: the HTML as rendered, or its PDF."""
    if media == PDF:
        return Response(content=body, status_code=200, media_type=PDF,
                        headers={"Content-Disposition": f'inline; filename="{filename}.pdf"'})
    return Response(
        content=body, status_code=200, media_type=f"{HTML}; charset=utf-8",
        headers={"Content-Security-Policy": CSP, "Content-Disposition": f'inline; filename="{filename}.html"'},
    )
