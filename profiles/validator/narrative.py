"""``htmlChecks()``: the FHIR rules on narrative XHTML (txt-1, txt-2).

fhirpathpy does not implement this FHIR-specific function; it is registered as a user
function and also backs the native txt-1/txt-2 checks.  Rules (R4B narrative.html): the
root is an XHTML ``div``; only the basic formatting elements are allowed -- no head/body,
scripts, forms, frames, objects, styles or links -- no event attributes (``on*``), no
``javascript:`` URL in a link or an image (stored XSS for any viewer that renders it); and
the narrative has some non-whitespace content (text or an image).
"""
from __future__ import annotations

from functools import lru_cache

from lxml import etree

XHTML_NS = "http://www.w3.org/1999/xhtml"
ALLOWED = frozenset(
    "a abbr acronym address b bdo big blockquote br caption center cite code col colgroup dd del "
    "dfn div dl dt em font h1 h2 h3 h4 h5 h6 hr i img ins kbd li map area ol p pre q s samp small "
    "span strike strong sub sup table tbody td tfoot th thead tr tt u ul var".split()
)
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


@lru_cache(maxsize=512)
def html_checks(div: str) -> bool:
    if not isinstance(div, str):
        return False
    try:
        root = etree.fromstring(div.encode("utf-8"), _PARSER)
    except etree.XMLSyntaxError:
        return False
    if root.tag != f"{{{XHTML_NS}}}div":
        return False
    has_content = False
    for el in root.iter():
        if not isinstance(el.tag, str):        # comments, processing instructions
            continue
        ns, _, local = el.tag[1:].partition("}") if el.tag.startswith("{") else ("", "", el.tag)
        if ns != XHTML_NS or local not in ALLOWED:
            return False
        for attr, value in el.attrib.items():
            name = attr.rsplit("}", 1)[-1].lower()
            if name.startswith("on"):
                return False
            if name in ("href", "src") and "".join(value.split()).lower().startswith("javascript:"):
                return False
        if local == "img":
            has_content = True
        if (el.text and el.text.strip()) or (el is not root and el.tail and el.tail.strip()):
            has_content = True
    return has_content
