"""Definitions derived from HL7's R4B package by ``tools/derive_search_definitions.py``.

The files here are generated, never edited by hand: rerun the tool to refresh them.
"""
from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

HERE = Path(__file__).resolve().parent


@lru_cache(maxsize=None)
def load(name: str) -> Any:
    """The decoded content of ``<name>.json`` (or ``<name>.json.gz``) in this folder."""
    plain = HERE / f"{name}.json"
    if plain.exists():
        return orjson.loads(plain.read_bytes())
    return orjson.loads(gzip.decompress((HERE / f"{name}.json.gz").read_bytes()))
