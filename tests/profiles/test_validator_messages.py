"""Messages in French (default), Arabic and English; the catalog is complete and consistent."""
from __future__ import annotations

import string

import pytest

from profiles.validator import Validator, pick_language
from profiles.validator.messages import CATALOG, LANGS, message

BAD = {"resourceType": "Patient", "gender": ["female"], "birthDate": "1990-02-30", "nickname": "Mina",
       "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}}


@pytest.fixture(scope="module")
def v():
    return Validator()


def fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_catalog_has_every_language_with_the_same_placeholders():
    for kind, entry in CATALOG.items():
        assert set(entry) == set(LANGS), kind
        assert fields(entry["fr"]) == fields(entry["ar"]) == fields(entry["en"]), kind


def test_french_is_the_default(v):
    texts = [i.diagnostics for i in v.validate(BAD)]
    assert texts == [
        "L'élément « gender » ne se répète pas et ne doit pas être un tableau JSON",
        'La valeur "1990-02-30" n\'est pas valide pour le type date',
        "Élément inconnu « nickname » : il n'est pas défini pour le type Patient",
    ]


def test_arabic(v):
    texts = [i.diagnostics for i in v.validate(BAD, lang="ar")]
    assert texts == [
        "العنصر «gender» غير قابل للتكرار ولا يجب أن يكون مصفوفة JSON",
        'القيمة "1990-02-30" غير صالحة للنوع date',
        "عنصر غير معروف «nickname»: غير معرَّف في النوع Patient",
    ]
    # same problems, same places, whatever the language
    assert [i.expression for i in v.validate(BAD, lang="ar")] == [i.expression for i in v.validate(BAD)]


def test_english_and_fallback(v):
    english = [i.diagnostics for i in v.validate(BAD, lang="en")]
    assert english[2] == "Unrecognised element 'nickname': not defined for type Patient"
    assert [i.diagnostics for i in v.validate(BAD, lang="de")] == english
    assert [i.diagnostics for i in v.validate(BAD, lang="ar-MA")] == [i.diagnostics for i in v.validate(BAD, lang="ar")]


def test_invariant_message_carries_key_and_text(v):
    p = {"resourceType": "Patient", "name": [{"family": "X", "period": {"start": "2021", "end": "2020"}}],
         "text": BAD["text"]}
    assert v.validate(p, lang="fr")[0].diagnostics.startswith("Contrainte per-1 non respectée : ")
    assert v.validate(p, lang="ar")[0].diagnostics.startswith("القيد per-1 غير مستوفى: ")


def test_message_fallbacks():
    assert message("no-such-kind", "fr") == "no-such-kind"
    assert message("min", "xx", name="a", min=1, count=0) == "'a': minimum cardinality is 1, found 0"
    assert message("min", "fr", name="a") == "« a » : au moins {min} occurrence(s) requise(s), {count} trouvée(s)"


@pytest.mark.parametrize("header,lang", [
    (None, "fr"), ("", "fr"), ("ar", "ar"), ("ar-MA,fr;q=0.8", "ar"), ("en-US,en;q=0.9,ar;q=0.8", "en"),
    ("fr-MA, ar;q=0.5", "fr"), ("de-DE", "fr"), ("de, ar;q=0.1", "ar"),
])
def test_pick_language(header, lang):
    assert pick_language(header) == lang
