"""One claims worker draining the queue under cProfile, start-up excluded:

    python -m bench.claims_profile OUT.prof     # environment as for ``sijill worker``

The same ``Worker`` as ``sijill worker --once`` (plugins loaded, the settings' database), with
the profiler around the drain loop only, so imports and connection set-up do not dilute the
figures.  Prints ``DRAINED <jobs> <seconds>``.
"""
from __future__ import annotations

import asyncio
import cProfile
import sys
import time


async def drain(out: str) -> tuple[int, float]:
    from claims.settings import get_claims_settings
    from claims.worker import Worker
    from ehr.plugins import load_plugins
    from ehr.settings import get_settings
    from ehr.store.db import create_engine

    load_plugins()
    settings = get_settings()
    engine = create_engine(settings.database_url, pool_size=4)
    worker = Worker(engine, get_claims_settings(), settings.base_url, "bench-profiled")
    profiler, done = cProfile.Profile(), 0
    try:
        started = time.perf_counter()
        profiler.enable()
        while n := await worker.run_once():
            done += n
        profiler.disable()
        seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    profiler.dump_stats(out)
    return done, seconds


if __name__ == "__main__":
    print("DRAINED %d %.3f" % asyncio.run(drain(sys.argv[1])))
