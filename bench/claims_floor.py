"""The write floor over HTTP for the claims benchmark: the leanest Python path from a POSTed
body to stored bytes.

An async Starlette app over a psycopg ``AsyncConnectionPool`` (uvicorn, uvloop/httptools, the
server's worker count), writing into the scratch table of ``bench/pg.py``:

* ``POST /fhir/{type}`` — parse the JSON, insert it under a fresh id, answer ``201`` with the
  body: what a single submission costs with no FHIR work at all;
* ``POST /fhir`` — a ``batch`` Bundle: every entry's resource in one ``executemany`` and one
  commit, answered by a ``batch-response`` of ``201`` entries.

Configuration (environment): ``BENCH_FLOOR_DSN`` (libpq URL), ``BENCH_FLOOR_POOL``.
"""
from __future__ import annotations

import os
import uuid

import orjson
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.floor_read import pool_lifespan
from bench.pg import FLOOR_TABLE

FHIR_JSON = "application/fhir+json"


def create_app(dsn: str, pool_size: int = 10) -> Starlette:
    pool = AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False)
    insert = sql.SQL("INSERT INTO {} (res_type, res_id, content) VALUES (%s, %s, %s)").format(sql.Identifier(FLOOR_TABLE))

    async def create(request: Request) -> Response:
        body = await request.body()
        try:
            res = orjson.loads(body)
        except orjson.JSONDecodeError:
            return Response(status_code=400)
        async with pool.connection() as conn:
            await conn.execute(insert, (request.path_params["res_type"], uuid.uuid4().hex, body), prepare=True)
        return Response(orjson.dumps(res), status_code=201, media_type=FHIR_JSON)

    async def batch(request: Request) -> Response:
        try:
            bundle = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return Response(status_code=400)
        rows = [(e["resource"]["resourceType"], uuid.uuid4().hex, orjson.dumps(e["resource"]))
                for e in bundle.get("entry") or []]
        async with pool.connection() as conn:
            async with conn.cursor() as cur:
                await cur.executemany(insert, rows)
        out = {"resourceType": "Bundle", "type": "batch-response",
               "entry": [{"response": {"status": "201 Created"}} for _ in rows]}
        return Response(orjson.dumps(out), media_type=FHIR_JSON)

    return Starlette(routes=[Route("/fhir", batch, methods=["POST"]),
                             Route("/fhir/{res_type}", create, methods=["POST"])], lifespan=pool_lifespan(pool))


def app_from_env() -> Starlette:
    """uvicorn entry point (``--factory``): each worker builds its own pool."""
    return create_app(os.environ["BENCH_FLOOR_DSN"], int(os.environ.get("BENCH_FLOOR_POOL", "10")))
