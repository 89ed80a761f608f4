"""The read floor: the leanest Python path from HTTP to the stored bytes.

An async Starlette app over a psycopg ``AsyncConnectionPool``: ``GET /fhir/{type}/{id}`` is one
primary-key lookup returning ``content`` as is.  Run by uvicorn with uvloop/httptools and the
server's worker count, it is what a read by id costs with no FHIR logic at all; the server's
read is measured against it.

Configuration (environment): ``BENCH_FLOOR_DSN`` (libpq URL), ``BENCH_FLOOR_TABLE``
(``resource``, or the scratch table when the server stored nothing), ``BENCH_FLOOR_POOL``.
"""
from __future__ import annotations

import os
from contextlib import asynccontextmanager

from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

FHIR_JSON = "application/fhir+json"


def create_app(dsn: str, table: str = "resource", pool_size: int = 10) -> Starlette:
    pool = AsyncConnectionPool(dsn, min_size=pool_size, max_size=pool_size, open=False)
    query = sql.SQL("SELECT content FROM {} WHERE res_type = %s AND res_id = %s").format(sql.Identifier(table))

    async def read(request: Request) -> Response:
        params = request.path_params
        async with pool.connection() as conn:
            cur = await conn.execute(query, (params["res_type"], params["res_id"]), prepare=True)
            row = await cur.fetchone()
        if row is None or row[0] is None:
            return Response(status_code=404)
        return Response(bytes(row[0]), media_type=FHIR_JSON)

    return Starlette(routes=[Route("/fhir/{res_type}/{res_id}", read)], lifespan=pool_lifespan(pool))


def pool_lifespan(pool):
    """The floor app's lifespan: the connection pool open while it serves."""
    @asynccontextmanager
    async def lifespan(_app):
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    return lifespan


def app_from_env() -> Starlette:
    """uvicorn entry point (``--factory``): each worker builds its own pool."""
    return create_app(
        os.environ["BENCH_FLOOR_DSN"],
        os.environ.get("BENCH_FLOOR_TABLE", "resource"),
        int(os.environ.get("BENCH_FLOOR_POOL", "10")),
    )
