"""What validating one write costs, before and after issue 12 (one validation on every write).

    python -m bench.write_validation [--rounds 2000]

Before: the R4B pydantic model check at the edge, then -- for a resource claiming a Sijill
profile -- the in-house validator's walk of the base definition again plus the profile's
deltas.  After: one walk of the base definition (``ehr.hooks.conform``) and the claimed
profiles' deltas.  For a care-sheet Claim (8 acts, claiming the care-sheet profile) and a
Patient (no profile).  CPU time of this process, median of 5 runs, microseconds per write.

``--http`` also times a whole ``POST /Patient`` through the app on a fresh SQLite database
(in-process, no network): run it on both trees (``PYTHONPATH=<tree>``) to compare.
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import logging
import statistics
import tempfile
import time
from pathlib import Path

from bench.validator_bench import care_sheet, claim_profiles
from ehr.parsing import check_structure
from profiles.validator import get_validator

PATIENT = {
    "resourceType": "Patient", "gender": "female", "birthDate": "1984-03-02",
    "identifier": [{"system": "https://fhir.sijill.ma/sid/cin", "value": "BK123456"}],
    "name": [{"family": "Alaoui", "given": ["Amina"]}],
    "telecom": [{"system": "phone", "value": "+212600000000"}],
    "address": [{"city": "Rabat", "country": "MA"}],
}


def per_call_us(fn, rounds: int) -> float:
    runs = []
    for _ in range(5):
        start = time.process_time()
        for _ in range(rounds):
            fn()
        runs.append((time.process_time() - start) / rounds * 1e6)
    return statistics.median(runs)


def validation_costs(rounds: int) -> None:
    v = get_validator()
    claim = care_sheet(8)
    claim["meta"]["profile"] = claim_profiles(v)
    for name, res in (("Claim (care sheet, 8 acts)", claim), ("Patient", PATIENT)):
        res = copy.deepcopy(res)
        rtype = res["resourceType"]
        profiled = bool((res.get("meta") or {}).get("profile"))

        def before() -> None:
            check_structure(res, rtype)
            if profiled:
                v.validate(res)

        def after() -> None:
            v.validate(res, [], identifier_formats=False)
            if profiled:
                v.validate(res, base=False)

        assert not [i for i in v.validate(res) if i.severity == "error"], f"{name} is not valid"
        b, a = per_call_us(before, rounds), per_call_us(after, rounds)
        print(f"{name:28s} before {b:7.0f} µs   after {a:7.0f} µs   ({b / a:.1f}x)")


async def http_cost(rounds: int) -> None:
    import httpx

    from ehr.app import create_app
    from ehr.settings import Settings
    from ehr.store.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        settings = Settings(_env_file=None, database_url=url, base_url="http://bench/fhir", data_dir=Path(tmp) / "data",
                            auth_required=False, rate_limit="1000000/minute", rate_limit_anonymous="1000000/minute")
        app = create_app(settings)
        logging.disable(logging.WARNING)  # the access log of every request
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench/fhir",
                                         headers={"Content-Type": "application/fhir+json"}) as client:
                for _ in range(50):  # warm-up
                    await client.post("/Patient", json=PATIENT)
                start = time.process_time()
                for _ in range(rounds):
                    assert (await client.post("/Patient", json=PATIENT)).status_code == 201
                print(f"POST /Patient, whole request  {(time.process_time() - start) / rounds * 1e6:7.0f} µs CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--http", action="store_true")
    args = parser.parse_args()
    if args.http:
        asyncio.run(http_cost(min(args.rounds, 500)))
    else:
        validation_costs(args.rounds)


if __name__ == "__main__":
    main()
