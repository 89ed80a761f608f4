"""Printing a prescription: the PDF with its signed QR code, p50/p99 over N prescriptions.

    python -m bench.prescription_print [--prescriptions 200] [--out bench/results]
    sijill bench prescription-print [--prescriptions 200]

Each prescription (1 to 5 lines, seeded numbers, Arabic and French names) goes the whole way the
``$print`` operation takes once its resources are read: the server's signature over the number,
the QR code (segno, PNG), the bilingual page (Jinja2), then WeasyPrint's layout and PDF (Pango,
HarfBuzz, fonts subset), in a process whose start-up objects are frozen out of the garbage
collector as the server's are (``ehr.app.freeze_startup_objects``).  The database read and the
HTTP round trip are left out: they are those of any read.  The floor, measured in the same run, is WeasyPrint turning a one-line HTML page
into a PDF — what any PDF costs here.  Target: p99 < 200 ms.  Writes
``<out>/<YYYY-MM-DD>-prescription-print.md``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

from ehr.app import freeze_startup_objects
from ehr.security.prescription_number import seeded_number
from ehr.security.prescription_signature import code
from ehr.settings import Settings
from interop.paper.catalogue import Bilingual
from interop.paper.directory import Identifier, Party
from interop.paper.letter import Printed
from interop.paper.pdf import pdf_of
from interop.paper.prescription import Line, Prescription
from interop.paper.printout import qr
from interop.paper.rendering import render

TARGET_MS = 200
MEDICINES = ["Metformine 850 mg", "Amlodipine 5 mg", "Amoxicilline 1 g", "Paracétamol 1 g", "Oméprazole 20 mg"]


def _prescription(settings: Settings, i: int) -> Prescription:
    number = seeded_number(f"bench-{i}")
    lines = [Line(Bilingual.same(MEDICINES[k]), None, "1 comprimé matin et soir", Bilingual("2 × / jour", "2 × / يوم"),
                  f"{k + 1} boîte", k % 2 == 0, "2026-06-02", k % 3, "active") for k in range(1 + i % 5)]
    return Prescription(
        number, qr(code(settings, number)), "2026-03-02",
        Party(Bilingual("Dr Karim Bennani", "د. كريم بناني"), [], "101234567"),
        Party(Bilingual("Amina Alaoui", "أمينة العلوي"), [Identifier(Bilingual("CIN", "ب.و.ت.إ"), "•••••456")]),
        lines, "A5",
    )


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def run(count: int, settings: Settings) -> dict:
    freeze_startup_objects()  # as the server does once started
    stamp = Printed(datetime.now(timezone.utc), None, "MedicationRequest/bench")
    floor_page = b"<!DOCTYPE html><html><body><p>Sijill</p></body></html>"
    pdf_of(floor_page), pdf_of(render("prescription.html", doc=_prescription(settings, 0), kind="rx", printed=stamp))  # fonts loaded once
    floor, full, cpu, sizes = [], [], [], []
    load_before = os.getloadavg()[0]
    for i in range(count):
        t0 = time.perf_counter()
        pdf_of(floor_page)
        t1, c1 = time.perf_counter(), time.process_time()
        pdf = pdf_of(render("prescription.html", doc=_prescription(settings, i), kind="rx", printed=stamp))
        t2, c2 = time.perf_counter(), time.process_time()
        floor.append((t1 - t0) * 1000)
        full.append((t2 - t1) * 1000)
        cpu.append((c2 - c1) * 1000)  # this process's own CPU: what other processes on the cores do not add
        sizes.append(len(pdf))
    return {"floor": _percentiles(floor), "full": _percentiles(full), "cpu": _percentiles(cpu), "bytes": statistics.median(sizes),
            "count": count, "pages": _most_pages(settings, stamp), "load": (load_before, os.getloadavg()[0])}


def _most_pages(settings: Settings, stamp: Printed) -> int:
    """The pages of the longest prescription (5 lines): the printout is one page."""
    from weasyprint import HTML

    page = render("prescription.html", doc=_prescription(settings, 4), kind="rx", printed=stamp)
    return len(HTML(string=page.decode("utf-8")).render().pages)


def report(result: dict) -> str:
    (f50, f99), (p50, p99), (c50, c99) = result["floor"], result["full"], result["cpu"]
    verdict = "met" if p99 < TARGET_MS else "NOT met"
    return "\n".join([
        f"# Printed prescription (PDF with signed QR) — {date.today().isoformat()}",
        "",
        f"{result['count']} prescriptions of 1 to 5 lines, A5, Arabic and French, one process, sequential "
        f"({platform.python_implementation()} {platform.python_version()}, {platform.machine()}, {os.cpu_count()} cores, "
        f"load average {result['load'][0]:.1f} at the start and {result['load'][1]:.1f} at the end of the run: "
        "other processes share the cores).",
        "",
        "| what | p50 (ms) | p99 (ms) |",
        "| --- | ---: | ---: |",
        f"| floor: WeasyPrint, one-line HTML page → PDF | {f50:.1f} | {f99:.1f} |",
        f"| prescription: signature + QR (segno) + page (Jinja2) + PDF (WeasyPrint) | {p50:.1f} | {p99:.1f} |",
        f"| prescription minus floor (p50) | {p50 - f50:.1f} | |",
        f"| prescription, CPU time of this process only | {c50:.1f} | {c99:.1f} |",
        "",
        f"Median PDF size: {result['bytes'] / 1024:.0f} KiB; at most {result['pages']} page(s) per prescription.  "
        f"Target p99 < {TARGET_MS} ms (wall clock): **{verdict}**.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sijill bench prescription-print", description=__doc__.split("\n\n")[0])
    parser.add_argument("--prescriptions", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as data:  # a fresh signing key, as a new server generates
        result = run(args.prescriptions, Settings(_env_file=None, data_dir=Path(data)))
    text = report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{date.today().isoformat()}-prescription-print.md").write_text(text)
    print(text)
    return 0 if result["full"][1] < TARGET_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
