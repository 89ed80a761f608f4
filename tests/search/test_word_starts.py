"""Moroccan names are found the way people type them: a plain string search matches the start of
any word of a name, with or without its article (El, Al, ال), on SQLite and PostgreSQL."""
import pytest
from sqlalchemy import func, select

from ehr.search.normalize import normalize, word_starts
from ehr.search.registry import param_hash
from ehr.search.values import word_hash
from ehr.store.schema import idx_string
from tests.search.helpers import found, ids, run, store


def _patient(pid: str, family: str, *given: str, **extra) -> dict:
    return {"resourceType": "Patient", "id": pid, "name": [{"family": family, "given": list(given)}], **extra}


@pytest.fixture
async def families(db):
    await store(
        db,
        _patient("al", "Al Haddad", "Karim"),
        _patient("el", "El-Haddad", "Salma"),
        _patient("ar", "الحداد", "سلمى"),
        _patient("plain", "Haddad", "Omar"),
        _patient("haddadi", "Haddadi", "Nora"),
        _patient("benali", "Benali", "Youssef"),
        _patient("compound", "Ait Ben Haddou", "Fatima Zahra"),
        _patient("ilyas", "الياس", "يونس"),
    )
    return db


def test_word_starts_of_a_folded_name():
    assert word_starts(normalize("El-Haddad")) == ["haddad"]
    assert word_starts(normalize("AL HADDAD Karim")) == ["haddad karim", "karim"]
    assert word_starts(normalize("الحداد")) == [normalize("حداد")]
    assert word_starts(normalize("عبد الله")) == [normalize("الله"), normalize("له")]
    assert word_starts(normalize("ال")) == []  # an article alone is a word like any other
    assert word_starts(normalize("Haddad")) == []


async def test_a_name_is_found_from_any_of_its_words(families):
    assert await found(families, "Patient", "name=haddad") == {"Patient/al", "Patient/el", "Patient/plain", "Patient/haddadi"}
    assert await found(families, "Patient", "family=haddad") == {"Patient/al", "Patient/el", "Patient/plain", "Patient/haddadi"}
    assert await found(families, "Patient", "name=ben haddou") == {"Patient/compound"}
    assert await found(families, "Patient", "name=zahra") == {"Patient/compound"}
    assert await found(families, "Patient", "name=haddad karim") == {"Patient/al"}  # "family given" from a later word
    assert await found(families, "Patient", "name=ali") == set()  # inside a word is :contains' business


async def test_the_arabic_article_is_ignored(families):
    assert await found(families, "Patient", "name=حداد") == {"Patient/ar"}
    assert await found(families, "Patient", "family=الحداد") == {"Patient/ar"}
    assert await found(families, "Patient", "name=ياس") == {"Patient/ilyas"}  # the index cannot tell ال from a root


async def test_exact_and_contains_keep_their_meaning(families):
    assert await found(families, "Patient", "family:exact=Haddad") == {"Patient/plain"}
    assert await found(families, "Patient", "family:exact=El-Haddad") == {"Patient/el"}
    assert await found(families, "Patient", "family:exact=حداد") == set()
    assert await found(families, "Patient", "name:contains=addad") == {
        "Patient/al", "Patient/el", "Patient/plain", "Patient/haddadi"}
    assert await found(families, "Patient", "family:missing=false") == {
        "Patient/al", "Patient/el", "Patient/ar", "Patient/plain", "Patient/haddadi", "Patient/benali",
        "Patient/compound", "Patient/ilyas"}


async def test_sorting_still_reads_the_whole_name(families):
    body = await run(families, "Patient", "family=haddad&_sort=family&_count=10", handling="strict")
    assert ids(body) == ["Patient/al", "Patient/el", "Patient/plain", "Patient/haddadi"]  # "al h" < "el h" < "haddad" < "haddadi"


async def test_word_rows_are_bounded_and_only_beside_their_value(db):
    long_text = " ".join(f"mot{i}" for i in range(40))
    await store(db, {"resourceType": "Organization", "id": "long", "name": long_text})
    async with db.connect() as conn:
        words = (await conn.execute(select(func.count()).select_from(idx_string).where(
            idx_string.c.param == word_hash(param_hash("Organization", "name"))))).scalar_one()
    assert words == 15  # the value from its 2nd to its 16th word
    assert await found(db, "Organization", "name=mot15") == {"Organization/long"}
    assert await found(db, "Organization", "name=mot16") == set()
    assert await found(db, "Organization", "name:contains=mot16") == {"Organization/long"}
