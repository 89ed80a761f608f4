"""Reading what one must not see, by id: read, vread, history (instance, type, system), search by
``_id`` (GET and POST ``_search``, with ``_total=accurate`` and ``_summary=count``), and a Binary
asked for raw.  An invisible resource answers exactly as a missing id — 404, or 403 where the role
never reads the type — and no answer carries anything of it."""
from __future__ import annotations

import pytest

from .scenario import BY_NAME, MISSING, NAMES, Adversary, Arena, Findings, entry_refs, issue_code, leaks


async def _same_as_missing(f: Findings, c, adv: Adversary, secrets: set[str], case: str, path: str, missing_path: str,
                           want: set[int], **headers) -> None:
    got, missing = await c.get(path, headers=headers), await c.get(missing_path, headers=headers)
    f.check(got.status_code in want, case, f"{got.status_code}, expected {sorted(want)}")
    f.check((got.status_code, issue_code(got)) == (missing.status_code, issue_code(missing)), case,
            f"answers {got.status_code}/{issue_code(got)} but a missing id gets {missing.status_code}/{issue_code(missing)}")
    f.check(not (found := leaks(got.text, secrets, path)), case, f"answer shows {found}")


@pytest.mark.parametrize("name", NAMES)
async def test_read_vread_and_instance_history(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for ref in adv.targets:
            t, i = ref.split("/")
            want = {adv.expected(t)}
            await _same_as_missing(f, c, adv, secrets, f"read {ref}", f"/{ref}", f"/{t}/{MISSING}", want)
            await _same_as_missing(f, c, adv, secrets, f"vread {ref}", f"/{ref}/_history/1", f"/{t}/{MISSING}/_history/1", want)
            await _same_as_missing(f, c, adv, secrets, f"history {ref}", f"/{ref}/_history", f"/{t}/{MISSING}/_history", {403, 404})
            if t == "Binary":  # the raw bytes, as a browser or a PDF viewer asks
                await _same_as_missing(f, c, adv, secrets, f"raw read {ref}", f"/{ref}", f"/{t}/{MISSING}", want,
                                       Accept="application/pdf")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_search_by_id_neither_returns_nor_counts(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets = arena.secrets(adv, linked=True)
    async with arena.client(adv) as c:
        for ref in adv.targets:
            t, i = ref.split("/")
            want = 200 if adv.may(t, "s") else 403
            answers = {
                f"GET {t}?_id={i}": await c.get(f"/{t}", params={"_id": i, "_total": "accurate"}),
                f"POST {t}/_search _id={i}": await c.post(f"/{t}/_search", content=f"_id={i}&_total=accurate",
                                                         headers={"Content-Type": "application/x-www-form-urlencoded"}),
                f"GET {t}?_id={i}&_summary=count": await c.get(f"/{t}", params={"_id": i, "_summary": "count"}),
                f"GET {t}?_id={i}&_revinclude=*": await c.get(f"/{t}", params={"_id": i, "_revinclude": "*", "_include": "*"}),
            }
            for case, r in answers.items():
                if not f.check(r.status_code == want, case, f"{r.status_code}, expected {want}") or want != 200:
                    f.check(not (found := leaks(r.text, secrets, case)), case, f"answer shows {found}")
                    continue
                body = r.json()
                f.check(body.get("total") == 0 and not entry_refs(body), case,
                        f"total {body.get('total')}, entries {entry_refs(body)}")
                f.check(not (found := leaks(r.text, secrets, case)), case, f"answer shows {found}")
    f.assert_none()


@pytest.mark.parametrize("name", NAMES)
async def test_type_and_system_history_and_system_search(arena: Arena, name: str):
    adv, f = BY_NAME[name], Findings(name)
    secrets, with_linked = arena.secrets(adv), arena.secrets(adv, linked=True)
    targets = set(adv.targets)
    async with arena.client(adv) as c:
        paths = [f"/{t}/_history" for t in sorted({r.split('/')[0] for r in adv.targets})] + ["/_history"]
        for path in paths:
            r = await c.get(path, params={"_count": 500})
            if not f.check(r.status_code in (200, 403), f"GET {path}", r.status_code) or r.status_code != 200:
                continue
            f.check(not (shown := targets & set(entry_refs(r.json()))), f"GET {path}", f"lists {sorted(shown)}")
            shown_ok = secrets if path == "/_history" else with_linked  # the whole system's history lists the directory
            f.check(not (found := leaks(r.text, shown_ok)), f"GET {path}", f"answer shows {found}")
        for ref in adv.targets:  # whole-system search by id, and with _type
            t, i = ref.split("/")
            for params in ({"_id": i, "_total": "accurate"}, {"_type": t, "_id": i, "_total": "accurate"}):
                r = await c.get("", params=params)
                case = f"GET [base]?{'&'.join(f'{k}={v}' for k, v in params.items())}"
                if not f.check(r.status_code in (200, 403), case, r.status_code) or r.status_code != 200:
                    continue
                body = r.json()
                f.check(body.get("total") == 0 and not entry_refs(body), case, f"total {body.get('total')}, entries {entry_refs(body)}")
                f.check(not (found := leaks(r.text, with_linked, case)), case, f"answer shows {found}")
    f.assert_none()
