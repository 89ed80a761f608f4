"""The signature printed with a prescription: what its QR code carries, and checking it.

The QR code of a printed prescription holds ``SJL1.<number>.<signature>``: the format tag, the
prescription number (``ehr.security.prescription_number``) and the server's signature over
``SJL1.<number>``, base64url without padding.  A number changed by hand or a code made up
elsewhere fails the check at the pharmacy (``MedicationRequest/$scan``), so a QR code is as good
as the number typed, without the typing.

A printed care sheet carries ``SJC1.<care sheet number>.<signature>``, signed the same way under
its own tag, so the pharmacy's check refuses it as a prescription code.

The key is ``SIJILL_PRESCRIPTION_SIGNING_KEY`` (PEM: Ed25519, or EC P-256 signing ES256) or,
when that is absent, an Ed25519 key generated once into
``<data_dir>/prescription-signing-key.pem`` — written whole and linked into place as the dev
issuer's key is (``ehr.security.issuer.publish_key``), so workers starting at once agree.
"""
from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from ehr.security.issuer import publish_key
from ehr.security.prescription_number import normalize
from ehr.settings import Settings

TAG = "SJL1"
CARE_SHEET_TAG = "SJC1"  # a care sheet's printed code: never taken for a prescription's
KEY_FILE = "prescription-signing-key.pem"
_ES256 = ec.ECDSA(hashes.SHA256())


class ForgedCode(ValueError):
    """A scanned text that is not a prescription code this server signed (the message says why)."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=4)
def _private_key(pem: str) -> ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if isinstance(key, ed25519.Ed25519PrivateKey) or (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1)):
        return key
    raise ValueError("the prescription signing key must be Ed25519 or EC P-256")


def signing_pem(settings: Settings) -> str:
    """The key's PEM: from the environment, else from (or freshly into) the data directory."""
    if settings.prescription_signing_key is not None:
        return settings.prescription_signing_key.get_secret_value()
    path: Path = settings.data_dir / KEY_FILE
    if not path.exists():
        fresh = ed25519.Ed25519PrivateKey.generate()
        publish_key(path, fresh.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return path.read_text()


def code(settings: Settings, number: str, tag: str = TAG) -> str:
    """The QR text of the prescription with this (canonical) number (``tag=CARE_SHEET_TAG``: of
    the care sheet with this number)."""
    key = _private_key(signing_pem(settings))
    signed = f"{tag}.{number}".encode()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(signed)
    else:  # ES256: r and s, 32 bytes each (JOSE's form, shorter than DER)
        r, s = decode_dss_signature(key.sign(signed, _ES256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{tag}.{number}.{_b64(signature)}"


def verify(settings: Settings, text: str) -> str:
    """The prescription number a scanned code carries, once its signature is checked; else
    ``ForgedCode``."""
    parts = (text or "").strip().split(".")
    if len(parts) != 3 or parts[0] != TAG:
        raise ForgedCode(f"ce n'est pas un code d'ordonnance Sijill (attendu : {TAG}.<numéro>.<signature>)")
    number = normalize(parts[1])
    if number is None or number != parts[1]:
        raise ForgedCode("le numéro du code n'est pas un numéro d'ordonnance valide")
    try:
        signature = _unb64(parts[2])
    except (binascii.Error, ValueError):
        raise ForgedCode("la signature du code est illisible") from None
    public = _private_key(signing_pem(settings)).public_key()
    signed = f"{TAG}.{number}".encode()
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, signed)
        elif len(signature) == 64:
            public.verify(encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")), signed, _ES256)
        else:
            raise InvalidSignature
    except InvalidSignature:
        raise ForgedCode("la signature ne correspond pas au numéro : code modifié ou contrefait") from None
    return number
