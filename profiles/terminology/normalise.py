"""Folding text the way people type it into an autocomplete box, in French or Arabic.

"Hôpital", "hopital" and "HOPITAL" must meet, and so must "مستشفى" typed with or without
harakat, tatweel, a hamza on the alef, a final ة written ه or a final ى written ي.  The
folding itself is the search engine's (``ehr.search.normalize``), so ``$expand?filter=`` and
``name=`` searches agree on what matches; this module adds the word-prefix keys.
"""
from __future__ import annotations

from ehr.search.normalize import normalize


def fold(text: str | None) -> str:
    """Lower-case, accents/harakat stripped, Arabic letter variants folded, punctuation -> space."""
    return normalize(text) if text else ""


def search_key(*texts: str | None) -> str:
    """The indexed form of a concept: every word preceded by a space, so that a query word
    matches the start of any word with a plain substring test (`" " + word in key`)."""
    return " " + " ".join(f for f in (fold(t) for t in texts if t) if f) + " "


def query_words(query: str | None) -> list[str]:
    """The words of an autocomplete query, each to be matched as a word prefix."""
    return [" " + w for w in fold(query or "").split()]
