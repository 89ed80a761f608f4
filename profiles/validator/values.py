"""Comparing instance values with fixed[x] / pattern[x], and reading discriminator paths."""
from __future__ import annotations

from typing import Any, Iterator

import orjson


def equals_fixed(value: Any, fixed: Any) -> bool:
    """fixed[x]: the value is exactly this (JSON equality; 1 and 1.0 are the same decimal)."""
    if isinstance(fixed, dict):
        if not isinstance(value, dict) or value.keys() != fixed.keys():
            return False
        return all(equals_fixed(value[k], v) for k, v in fixed.items())
    if isinstance(fixed, list):
        return isinstance(value, list) and len(value) == len(fixed) and all(
            equals_fixed(a, b) for a, b in zip(value, fixed))
    if type(fixed) is bool or type(value) is bool:
        return value is fixed
    return value == fixed


def matches_pattern(value: Any, pattern: Any) -> bool:
    """pattern[x]: every property of the pattern is in the value (arrays: each pattern item
    is matched by some item of the value); the value may hold more."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        for k, p in pattern.items():
            if k not in value or not matches_pattern(value[k], p):
                return False
        return True
    if isinstance(pattern, list):
        if not isinstance(value, list):
            return False
        return all(any(matches_pattern(v, p) for v in value) for p in pattern)
    if type(pattern) is bool or type(value) is bool:
        return value is pattern
    return value == pattern


def cap(code: str) -> str:
    return code[:1].upper() + code[1:]


def children_named(value: Any, name: str, choice_types: tuple[str, ...] | None) -> Iterator[tuple[Any, str | None]]:
    """The values (with their type when the JSON key tells it) of child ``name`` of ``value``."""
    if not isinstance(value, dict):
        return
    if choice_types is None:
        found = value.get(name)
        if found is None:
            return
        for item in found if isinstance(found, list) else (found,):
            if item is not None:
                yield item, None
        return
    for code in choice_types:
        found = value.get(name + cap(code))
        if found is not None:
            for item in found if isinstance(found, list) else (found,):
                if item is not None:
                    yield item, code


def show(value: Any, limit: int = 120) -> str:
    """A short JSON-ish rendering of a value for messages."""
    try:
        text = orjson.dumps(value).decode()
    except TypeError:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
