"""What the signed one-page printouts (a prescription, a care sheet) share: the page size asked
(``?format=A5``, the default, or ``A4``) and the QR code of their signed number."""
from __future__ import annotations

import segno

from ehr.operations.registry import Invocation
from ehr.outcome import FHIRError

FORMATS = ("A5", "A4")


def page_size(inv: Invocation) -> str:
    size = (inv.first("format") or "A5").upper()
    if size not in FORMATS:
        raise FHIRError.of(400, "invalid", f"format={size} : A5 (par défaut) ou A4", "http.format")
    return size


def qr(text: str) -> str:
    """A PNG data: URL (four pixels a module): cheaper to lay out than the same code as SVG."""
    return segno.make(text, error="m", micro=False).png_data_uri(scale=4, border=4)
