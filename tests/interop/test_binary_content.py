"""Documents are checked against their bytes (issue 12): a declared PDF, JPEG, PNG, TIFF, DICOM…
must start as that format does, and a program is refused whatever it claims to be — raw
uploads, the FHIR JSON form and Binary entries of a Bundle alike, with 415 and an
OperationOutcome, nothing stored.  Both databases."""
from __future__ import annotations

import base64
import io
import struct
import zlib

import pypdf
import pytest

from interop.binary.content import check_document
from ehr.outcome import FHIRError

# What Windows executables start with: the DOS header, its stub, then the PE header.
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 44 + b"\x80\x00\x00\x00" \
    + b"This program cannot be run in DOS mode.\r\r\n$" + b"\x00" * 20 + b"PE\x00\x00"


def small_pdf() -> bytes:
    writer = pypdf.PdfWriter()
    writer.add_blank_page(72, 72)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def small_png() -> bytes:
    """A 1×1 white PNG, chunk by chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff")) + chunk(b"IEND", b"")


async def upload(client, data: bytes, media: str):
    return await client.post("/Binary", content=data, headers={"Content-Type": media})


def refused_415(resp, where: str) -> None:
    assert resp.status_code == 415, resp.text
    issue = resp.json()["issue"][0]
    assert resp.json()["resourceType"] == "OperationOutcome" and issue["code"] == "not-supported"
    assert issue["expression"] == [where]


async def stored(client) -> int:
    return (await client.get("/Binary", params={"_summary": "count"})).json()["total"]


async def test_a_windows_program_sent_as_a_pdf_is_refused_and_not_stored(client):
    refused_415(await upload(client, PE + b"\x00" * 4000, "application/pdf"), "Binary.data")
    sent = {"resourceType": "Binary", "contentType": "application/pdf", "data": base64.b64encode(PE).decode()}
    refused_415(await client.post("/Binary", json=sent), "Binary.data")
    assert await stored(client) == 0


async def test_a_program_is_refused_whatever_it_claims_to_be(client):
    for media in ("application/octet-stream", "text/plain", "application/x-msdownload"):
        refused_415(await upload(client, PE, media), "Binary.data")
    refused_415(await upload(client, b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "image/png"), "Binary.data")
    refused_415(await upload(client, b"#!/bin/sh\nrm -rf /\n", "text/plain"), "Binary.data")
    assert await stored(client) == 0


async def test_bytes_that_are_not_the_declared_format_are_refused(client):
    refused_415(await upload(client, small_png(), "application/pdf"), "Binary.contentType")
    refused_415(await upload(client, small_pdf(), "image/jpeg"), "Binary.contentType")
    refused_415(await upload(client, b"", "image/png"), "Binary.contentType")
    assert await stored(client) == 0


async def test_a_real_pdf_and_png_are_stored_and_served_back(client):
    for data, media in ((small_pdf(), "application/pdf"), (small_png(), "image/png")):
        created = await upload(client, data, media)
        assert created.status_code == 201, created.text
        back = await client.get(f"/Binary/{created.json()['id']}", headers={"Accept": media})
        assert back.content == data and back.headers["content-type"] == media
    text = await upload(client, "Compte rendu de consultation".encode(), "text/plain")
    assert text.status_code == 201  # a type outside the table: taken as declared (it is no program)


async def test_a_binary_entry_of_a_bundle_is_checked_too(client):
    entry = {"resource": {"resourceType": "Binary", "contentType": "application/pdf", "data": base64.b64encode(PE).decode()},
             "request": {"method": "POST", "url": "Binary"}}
    r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]})
    refused_415(r, "Bundle.entry[0].resource.data")
    good = {**entry, "resource": {**entry["resource"], "data": base64.b64encode(small_pdf()).decode()}}
    r = await client.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [good]})
    assert r.status_code == 200 and r.json()["entry"][0]["response"]["status"].startswith("201")


@pytest.mark.parametrize("media, head", [
    ("image/jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF"),
    ("image/tiff", b"II*\x00\x08\x00\x00\x00"),
    ("image/tiff", b"MM\x00*\x00\x00\x00\x08"),
    ("application/dicom", b"\x00" * 128 + b"DICM\x02\x00"),
    ("image/gif", b"GIF89a\x01\x00"),
    ("application/pdf; charset=binary", b"%PDF-1.7\n"),
])
def test_each_format_of_the_table_is_recognised_by_its_signature(media, head):
    check_document(media, head)
    with pytest.raises(FHIRError):
        check_document(media, b"\x00" * 140)
