"""The printable pages as PDF, through WeasyPrint.

WeasyPrint lays the same HTML out with Pango and HarfBuzz (system libraries): Arabic is shaped,
right-to-left paragraphs break and order as in a browser, and the text copies out of the PDF in
logical order.  Fonts are embedded as subsets — fast only with HarfBuzz's subsetter
(``libharfbuzz-subset0``; without it WeasyPrint falls back to fontTools, ten times slower).
The page is self-contained (inline styles, images as ``data:`` URLs): the fetcher refuses
every other scheme, so rendering never reaches the network or the file system.

Rendering takes tens of milliseconds of CPU: it runs in a worker thread, not on the event loop.
"""
from __future__ import annotations

from functools import lru_cache

from starlette.concurrency import run_in_threadpool


@lru_cache(maxsize=1)
def _fonts():
    from weasyprint.text.fonts import FontConfiguration  # imported on first use: keeps the app's import cheap
    return FontConfiguration()


def pdf_of(html: bytes) -> bytes:
    """The PDF of a printable page (blocking: call ``render_pdf`` from async code)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher
    fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)  # one per page: it keeps per-request state
    return HTML(string=html.decode("utf-8"), url_fetcher=fetcher).write_pdf(font_config=_fonts())


async def render_pdf(html: bytes) -> bytes:
    return await run_in_threadpool(pdf_of, html)
