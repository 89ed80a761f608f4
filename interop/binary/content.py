"""A document is what its bytes are, not what its Content-Type says.

The first bytes of each format the server stores are fixed by that format's specification (its
"magic number"): a small table of them checks the declared type of an upload before anything is
stored, from the first ``HEAD_BYTES`` of the body (a streamed upload is read no further to
decide).  A declared type in the table whose bytes do not match, and bytes that start like an
executable program (Windows PE/DOS, ELF, Mach-O, a script's ``#!``) whatever type they claim,
are refused with 415 and an OperationOutcome; so is a declared executable type.  Types outside
the table (text, JSON, a JSON Patch) are taken as declared unless their bytes are a program.
No library: ``python-magic`` needs libmagic and guesses a type, where only the declared one is
to be confirmed, which five signatures do.
"""
from __future__ import annotations

import base64
import binascii
from typing import AsyncIterator

from ehr.i18n import current_language
from ehr.interactions.context import Context
from ehr.outcome import FHIRError

# DICOM Part 10: a 128-byte preamble, then "DICM" (bytes 128-131).
HEAD_BYTES = 132

# declared type -> alternatives, each a set of (offset, bytes) that must all be there
SIGNATURES: dict[str, tuple[tuple[tuple[int, bytes], ...], ...]] = {
    "application/pdf": (((0, b"%PDF-"),),),
    "image/jpeg": (((0, b"\xff\xd8\xff"),),),
    "image/png": (((0, b"\x89PNG\r\n\x1a\n"),),),
    "image/tiff": (((0, b"II*\x00"),), ((0, b"MM\x00*"),)),
    "application/dicom": (((128, b"DICM"),),),
    "image/gif": (((0, b"GIF87a"),), ((0, b"GIF89a"),)),
    "image/webp": (((0, b"RIFF"), (8, b"WEBP")),),
}
_EXECUTABLE = (b"MZ", b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
               b"\xca\xfe\xba\xbe", b"#!")
_EXECUTABLE_TYPES = {
    "application/x-msdownload", "application/x-msdos-program", "application/x-dosexec", "application/x-executable",
    "application/vnd.microsoft.portable-executable", "application/x-sharedlib", "application/x-mach-binary",
    "application/x-sh", "application/x-elf",
}
_MESSAGES = {
    "program": {
        "fr": "Ce document est un programme exécutable : refusé",
        "ar": "هذه الوثيقة برنامج قابل للتنفيذ: مرفوضة",
        "en": "This document is an executable program: refused",
    },
    "mismatch": {
        "fr": "Le contenu de ce document n'est pas du {media} comme l'annonce son Content-Type",
        "ar": "محتوى هذه الوثيقة ليس من نوع {media} كما يعلن Content-Type",
        "en": "This document's bytes are not {media}, as its Content-Type says",
    },
}


def _refused(kind: str, media: str) -> FHIRError:
    text = _MESSAGES[kind]
    lang = current_language()
    where = "Binary.data" if kind == "program" else "Binary.contentType"
    return FHIRError.of(415, "not-supported", text.get(lang, text["fr"]).format(media=media), where)


def check_document(content_type: str | None, head: bytes) -> None:
    """Refuse (415) bytes that are not what ``content_type`` declares, or that are a program."""
    media = (content_type or "").split(";")[0].strip().lower()
    if media in _EXECUTABLE_TYPES or head.startswith(_EXECUTABLE):
        raise _refused("program", media)
    expected = SIGNATURES.get(media)
    if expected is not None and not any(all(head[at : at + len(magic)] == magic for at, magic in alt) for alt in expected):
        raise _refused("mismatch", media)


async def peek(chunks: AsyncIterator[bytes], size: int = HEAD_BYTES) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first ``size`` bytes of a stream (or all of a shorter one), and the whole stream again."""
    stream = chunks.__aiter__()
    head = b""
    while len(head) < size:
        try:
            head += await stream.__anext__()
        except StopAsyncIteration:
            break

    async def whole() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in stream:
            yield chunk

    return head, whole()


def head_of(encoded: str) -> bytes | None:
    """The first ``HEAD_BYTES`` of a base64 ``Binary.data`` (None if it is not base64)."""
    text = "".join(encoded.split())[: (HEAD_BYTES + 2) // 3 * 4]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


async def check_inline_document(_ctx: Context, res: dict) -> None:
    """Write validator: a Binary carrying its bytes (a Bundle entry, an import) is checked too."""
    data = res.get("data")
    if res.get("resourceType") == "Binary" and isinstance(data, str) and (head := head_of(data)) is not None:
        check_document(res.get("contentType"), head)
