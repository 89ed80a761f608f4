"""Signing keys of trusted issuers: a fixed JWKS (the built-in issuer) or a remote one.

A remote issuer is any OpenID Connect provider: its JWKS URL is configured, or found in its
discovery document.  Keys are cached for ``ttl`` seconds; a token signed with a key id we do not
know causes one refetch (key rotation), throttled so that forged kids cannot make us hammer the
provider.
"""
from __future__ import annotations

import asyncio
import time
from typing import Protocol

import httpx
from jose import jwk
from jose.backends.base import Key
from jose.exceptions import JWKError

# The only algorithms accepted, and the key type each needs: never "none", never HMAC (a
# public key must not double as a shared secret).
ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}
_EC_CURVE = {"ES256": "P-256"}


class KeySourceUnavailable(Exception):
    """The issuer's keys could not be fetched and none are cached: a server-side problem."""


class KeySet(Protocol):
    async def key_for(self, kid: str | None, alg: str) -> Key | None: ...


def usable_key(jwk_dict: dict, alg: str) -> Key | None:
    """The verification key for ``alg``, or None when the JWK is not fit for it."""
    if ALGORITHMS.get(alg) != jwk_dict.get("kty"):
        return None
    if jwk_dict.get("alg") not in (None, alg) or jwk_dict.get("use") not in (None, "sig"):
        return None
    if alg in _EC_CURVE and jwk_dict.get("crv") != _EC_CURVE[alg]:
        return None
    if "d" in jwk_dict:  # a private key published by mistake: refuse rather than use it
        return None
    try:
        return jwk.construct(jwk_dict, alg)
    except (JWKError, ValueError, TypeError):
        return None


class _Keys:
    """Parsed keys of one JWKS document, each constructed once per algorithm."""

    def __init__(self, document: dict):
        keys = document.get("keys") if isinstance(document, dict) else None
        self.jwks: list[dict] = [k for k in keys if isinstance(k, dict)] if isinstance(keys, list) else []
        self._built: dict[tuple[str | None, str], Key | None] = {}

    def find(self, kid: str | None, alg: str) -> Key | None:
        cache_key = (kid, alg)
        if cache_key not in self._built:
            self._built[cache_key] = self._select(kid, alg)
        return self._built[cache_key]

    def _select(self, kid: str | None, alg: str) -> Key | None:
        if kid is None:
            # No kid: acceptable only when exactly one key could have signed it.
            candidates = [k for k in self.jwks if usable_key(k, alg) is not None]
            return usable_key(candidates[0], alg) if len(candidates) == 1 else None
        match = next((k for k in self.jwks if k.get("kid") == kid), None)
        return usable_key(match, alg) if match is not None else None

    def has_kid(self, kid: str | None) -> bool:
        return kid is not None and any(k.get("kid") == kid for k in self.jwks)


class StaticKeySet:
    def __init__(self, document: dict):
        self._keys = _Keys(document)

    async def key_for(self, kid: str | None, alg: str) -> Key | None:
        return self._keys.find(kid, alg)


class RemoteKeySet:
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        issuer_url: str | None = None,
        jwks_url: str | None = None,
        ttl: float = 3600,
        refetch_after: float = 30,
    ):
        if not (issuer_url or jwks_url):
            raise ValueError("a remote key set needs issuer_url or jwks_url")
        self._client = client
        self.issuer_url = issuer_url.rstrip("/") if issuer_url else None
        self._jwks_url = jwks_url
        self._ttl = ttl
        self._refetch_after = refetch_after
        self._keys: _Keys | None = None
        self._fetched_at = float("-inf")
        self._discovery: dict | None = None
        self._discovered_at = float("-inf")
        self._lock = asyncio.Lock()

    async def discovery(self) -> dict:
        """The provider's OpenID configuration (cached like the keys)."""
        if self.issuer_url is None:
            return {}
        if self._discovery is not None and time.monotonic() - self._discovered_at < self._ttl:
            return self._discovery
        doc = await self._get_json(f"{self.issuer_url}/.well-known/openid-configuration")
        # OpenID Connect Discovery §4.3: the document must name the issuer it was fetched for.
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer_url:
            raise KeySourceUnavailable(f"discovery document of {self.issuer_url} names issuer {doc.get('issuer')!r}")
        self._discovery, self._discovered_at = doc, time.monotonic()
        return doc

    async def jwks_url(self) -> str:
        if self._jwks_url:
            return self._jwks_url
        uri = (await self.discovery()).get("jwks_uri")
        if not isinstance(uri, str):
            raise KeySourceUnavailable(f"the discovery document of {self.issuer_url} has no jwks_uri")
        return uri

    async def key_for(self, kid: str | None, alg: str) -> Key | None:
        now = time.monotonic()
        keys = self._keys
        if keys is None or now - self._fetched_at >= self._ttl:
            keys = await self._refresh(force=False)
        found = keys.find(kid, alg)
        if found is None and not keys.has_kid(kid) and time.monotonic() - self._fetched_at >= self._refetch_after:
            # Unknown kid: the provider may have rotated its keys since our fetch. Once.
            keys = await self._refresh(force=True)
            found = keys.find(kid, alg)
        return found

    async def _refresh(self, force: bool) -> _Keys:
        async with self._lock:
            # Another request may have refreshed while we waited for the lock.
            fresh = time.monotonic() - self._fetched_at < (self._refetch_after if force else self._ttl)
            if self._keys is not None and fresh:
                return self._keys
            try:
                document = await self._get_json(await self.jwks_url())
            except KeySourceUnavailable:
                if self._keys is not None:
                    # Keep verifying with what we had; try the provider again a little later.
                    self._fetched_at = time.monotonic() - self._ttl + self._refetch_after
                    return self._keys
                raise
            self._keys, self._fetched_at = _Keys(document), time.monotonic()
            return self._keys

    async def _get_json(self, url: str) -> dict:
        try:
            response = await self._client.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            doc = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise KeySourceUnavailable(f"cannot fetch {url}: {exc}") from None
        if not isinstance(doc, dict):
            raise KeySourceUnavailable(f"{url} did not return a JSON object")
        return doc
