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

A plain string search matches the start of any word of a value, not only its start: Moroccan
names are typed without their article ("haddad" for "El Haddad", "حداد" for "الحداد").  The
index keeps, beside the folded value, its *word starts* (``word_starts``): the value from each
later word on, and each word that begins with the Arabic article ال also without it.  Latin
articles need nothing more: "El-Haddad", "el haddad" and "AL Haddad" fold to two words, and the
value from the second one on is a word start.
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


_ARABIC_ARTICLE = "\u0627\u0644"  # ال, written joined to its noun
MAX_WORD_STARTS = 16  # words of a value that may start a match (keeps long texts' rows bounded)


def word_starts(norm: str) -> list[str]:
    """The other forms of a folded value that a plain (prefix) search must also find: the value
    from each later word on, and each word without its Arabic article (when at least two
    letters remain)."""
    words = norm.split(" ")
    out: list[str] = []
    for i, word in enumerate(words[:MAX_WORD_STARTS]):
        if i:
            out.append(" ".join(words[i:]))
        if word.startswith(_ARABIC_ARTICLE) and len(word) >= len(_ARABIC_ARTICLE) + 2:
            out.append(" ".join([word[len(_ARABIC_ARTICLE):], *words[i + 1:]]))
    return out
