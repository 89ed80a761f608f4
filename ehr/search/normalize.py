"""Folding of strings for search: what a user types must find what a clerk entered.

Names in Morocco are written in French (accents, hyphens, apostrophes) and in Arabic (with or
without harakat, with any of the alef/hamza/yeh spellings).  Both the indexed value and the
searched value go through ``normalize`` so matching is a plain prefix comparison in SQL:

* Unicode NFKD, then combining marks dropped (é→e, and also the Arabic harakat/tashkeel and
  the hamza/madda marks that NFKD splits off أ إ آ ؤ ئ);
* case folded (also ß→ss);
* Arabic letter variants folded: ٱ→ا, ة→ه, ى→ي, Persian ی/ک→ي/ك, tatweel removed,
  Arabic-Indic digits to ASCII digits;
* ligatures œ/æ spelled out, apostrophes dropped, other punctuation turned into spaces,
  whitespace collapsed.
"""
from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_FOLD = str.maketrans(
    {
        "\u0671": "\u0627",  # ٱ alef wasla -> ا
        "\u0672": "\u0627",  # ٲ alef with wavy hamza above
        "\u0673": "\u0627",  # ٳ alef with wavy hamza below
        "\u0675": "\u0627",  # ٵ high hamza alef
        "\u0629": "\u0647",  # ة teh marbuta -> ه
        "\u0649": "\u064a",  # ى alef maksura -> ي
        "\u06cc": "\u064a",  # ی farsi yeh -> ي
        "\u06d2": "\u064a",  # ے yeh barree
        "\u06a9": "\u0643",  # ک keheh -> ك
        "\u0640": None,  # tatweel (kashida) is decoration
        "\u0621": None,  # a lone hamza is often left out when typing
        "\u0674": None,  # high hamza
        # Apostrophes join (M'hamed is typed "mhamed"); other punctuation becomes a space.
        "'": None,
        "\u2019": None,
        "\u02bc": None,
        "`": None,
        "œ": "oe",
        "æ": "ae",
        "ø": "o",
        "đ": "d",
        "ł": "l",
        "ı": "i",
        **{chr(0x0660 + d): str(d) for d in range(10)},  # Arabic-Indic digits
        **{chr(0x06F0 + d): str(d) for d in range(10)},  # Extended Arabic-Indic digits
    }
)
_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


@lru_cache(maxsize=65536)
def normalize(text: str) -> str:
    """The folded form used in ``idx_string.norm`` and ``idx_token.text``."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    folded = stripped.casefold().translate(_FOLD)
    return _NON_WORD.sub(" ", folded).strip()
