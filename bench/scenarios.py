"""What the benchmark loads and asks: the generated data (spooled to disk once, so ingest
timing excludes generation) and, from it, the request paths of every measured scenario.

Paths are drawn from values that exist in the loaded data (patient ids, CIN numbers, ICD-10
codes, encounter months), written one per line to files that wrk's Lua scripts and the
single-client loops pick from at random.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

import orjson

from ehr.demo import patient_bundles, patient_resources
from ehr.demo.systems import CIN
from ehr.demo.terminology import ICD10

BASE = "/fhir"
MAX_PATHS = 20_000  # per scenario file: enough variety, bounded size


@dataclass
class Catalog:
    """Facts about the generated data that the scenarios need."""

    patients: int = 0
    bundles: int = 0
    resources: int = 0
    generation_s: float = 0.0
    patient_ids: list[str] = field(default_factory=list)
    heavy: dict[str, int] = field(default_factory=dict)  # heavy patient id -> its resource count
    cin_of: list[str | None] = field(default_factory=list)  # aligned with patient_ids (minors: None)
    chronic_codes: Counter = field(default_factory=Counter)  # ICD-10 codes on problem lists
    all_codes: Counter = field(default_factory=Counter)
    encounter_months: Counter = field(default_factory=Counter)  # "YYYY-MM" -> encounters
    entry_counts: list[int] = field(default_factory=list)  # per spooled bundle

    @property
    def generated_per_s(self) -> float:
        return self.resources / self.generation_s if self.generation_s else 0.0

    @property
    def cins(self) -> list[str]:
        return [c for c in self.cin_of if c]

    def prefix(self, n: int) -> "Catalog":
        """The catalog of the first ``n`` patients (what a time-bounded load managed to send).
        Code and month statistics stay population-wide: a value with no match still answers 200."""
        if n >= self.patients:
            return self
        kept = set(self.patient_ids[:n])
        return Catalog(
            patients=n, bundles=n, resources=sum(self.entry_counts[:n]), generation_s=self.generation_s,
            patient_ids=self.patient_ids[:n], heavy={k: v for k, v in self.heavy.items() if k in kept},
            cin_of=self.cin_of[:n], chronic_codes=self.chronic_codes, all_codes=self.all_codes,
            encounter_months=self.encounter_months, entry_counts=self.entry_counts[:n],
        )


def spool(path: Path, n_patients: int, seed: int, heavy_every: int, per_patient: int) -> Catalog:
    """Generate the patients' bundles into ``path`` (one JSON document per line)."""
    cat = Catalog(patients=n_patients)
    started = time.perf_counter()
    with path.open("wb") as out:
        for index, bundle in enumerate(patient_bundles(n_patients, seed, heavy_every=heavy_every,
                                                       per_patient=per_patient)):
            entries = bundle["entry"]
            _observe(cat, entries, heavy=heavy_every > 0 and index % heavy_every == 0)
            out.write(orjson.dumps(bundle))
            out.write(b"\n")
            cat.entry_counts.append(len(entries))
    cat.bundles = n_patients
    cat.resources = sum(cat.entry_counts)
    cat.generation_s = time.perf_counter() - started
    return cat


def _observe(cat: Catalog, entries: list[dict], heavy: bool) -> None:
    patient = entries[0]["resource"]
    cat.patient_ids.append(patient["id"])
    if heavy:
        cat.heavy[patient["id"]] = len(entries)
    cat.cin_of.append(next((i["value"] for i in patient.get("identifier", ()) if i.get("system") == CIN), None))
    for e in entries:
        r = e["resource"]
        rt = r["resourceType"]
        if rt == "Condition":
            code = r["code"]["coding"][0]["code"]
            cat.all_codes[code] += 1
            if "encounter" not in r:
                cat.chronic_codes[code] += 1
        elif rt == "Encounter":
            cat.encounter_months[r["period"]["start"][:7]] += 1


def spooled(path: Path, counts: list[int]) -> Iterator[tuple[bytes, int]]:
    """Read the spool back as ``(body, entries)`` for the loader."""
    with path.open("rb") as f:
        for line, n in zip(f, counts, strict=True):
            yield line.rstrip(b"\n"), n


def create_bodies(seed: int, count: int = 200) -> list[bytes]:
    """Patients for the single-create phase: another seed's, without ids (the server assigns)."""
    out = []
    for index in range(count):
        p = patient_resources(index, seed)[0]
        p.pop("id", None)
        p.pop("contact", None)  # fine either way; keeps bodies to the Patient's own data
        out.append(orjson.dumps(p))
    return out


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    paths: tuple[str, ...]


def _q(value: str) -> str:
    return quote(value, safe="")


def scenarios(cat: Catalog, rng: random.Random) -> dict[str, Scenario]:
    """Every GET scenario, keyed as the report and the targets name them."""
    ids = cat.patient_ids
    all_cins = cat.cins
    sample_ids = ids if len(ids) <= MAX_PATHS else rng.sample(ids, MAX_PATHS)
    cins = all_cins if len(all_cins) <= MAX_PATHS else rng.sample(all_cins, MAX_PATHS)
    codes = sorted(cat.all_codes) or ["E11"]
    chronic = sorted(cat.chronic_codes) or ["E11"]
    months = sorted(cat.encounter_months) or ["2024-01"]

    def month_window(m: str) -> str:
        start = date.fromisoformat(m + "-01")
        end = (start + timedelta(days=32)).replace(day=1)
        return f"date=ge{start.isoformat()}&date=lt{end.isoformat()}"

    out = [
        Scenario("read", "Read Patient by id", tuple(f"{BASE}/Patient/{i}" for i in sample_ids)),
        Scenario("search_token", "Token search (Condition?code=ICD-10)",
                 tuple(f"{BASE}/Condition?code={_q(ICD10 + '|' + c)}&_count=20" for c in codes)),
        Scenario("search_identifier", "Identifier search (Patient?identifier=CIN)",
                 tuple(f"{BASE}/Patient?identifier={_q(CIN + '|' + c)}" for c in cins) or
                 (f"{BASE}/Patient?identifier={_q(CIN + '|none')}",)),
        Scenario("search_date_sort", "Date range + _sort (Encounter, one month, store-wide)",
                 tuple(f"{BASE}/Encounter?{month_window(m)}&_sort=-date&_count=20" for m in months)),
        Scenario("search_chained", "Chained search (Observation?subject:Patient.identifier=CIN)",
                 tuple(f"{BASE}/Observation?subject:Patient.identifier={_q(CIN + '|' + c)}&_count=20"
                       for c in cins[:2000]) or (f"{BASE}/Observation?subject:Patient.identifier=x",)),
        Scenario("search_has", "Reverse chain (Patient?_has:Condition:subject:code=ICD-10)",
                 tuple(f"{BASE}/Patient?_has:Condition:subject:code={_q(ICD10 + '|' + c)}&_count=20" for c in chronic)),
        Scenario("search_total", "_total=accurate over the store (Observation?category=vital-signs)",
                 (f"{BASE}/Observation?category=vital-signs&_total=accurate&_count=10",)),
        Scenario("search_include", "_include (Encounter?subject=…&_include=Encounter:practitioner,service-provider)",
                 tuple(f"{BASE}/Encounter?subject=Patient/{i}&_include=Encounter:practitioner"
                       f"&_include=Encounter:service-provider&_count=20" for i in sample_ids[:5000])),
        Scenario("everything", "Patient/$everything of a heavy patient (~500 resources)",
                 tuple(f"{BASE}/Patient/{i}/$everything?_count=1000" for i in sorted(cat.heavy)) or
                 (f"{BASE}/Patient/{ids[0]}/$everything?_count=1000",)),
    ]
    return {s.key: s for s in out}


def write_paths(directory: Path, scenario: Scenario) -> Path:
    path = directory / f"{scenario.key}.paths"
    path.write_text("\n".join(scenario.paths) + "\n")
    return path
