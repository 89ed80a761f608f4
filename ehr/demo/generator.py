"""Public API of the synthetic Moroccan population.

- ``reference_bundle(seed)``: one transaction Bundle of the shared Organizations (funds,
  hospitals, clinics, pharmacies, labs), Practitioners and PractitionerRoles;
- ``patient_bundles(n, seed)``: one transaction Bundle per patient, streamed;
- ``iter_resources(n, seed)``: the same resources as a flat stream (reference population first),
  references resolved to ``Type/id``.

Every entry is a ``PUT Type/id`` with a deterministic id, so loading twice is idempotent, and a
``urn:uuid`` fullUrl derived from that id; within a patient's bundle references use the urn,
references to the reference population use ``Type/id``.  Same seed, same bytes.
"""
from __future__ import annotations

from typing import Iterator

import orjson

from ehr.demo.chart import Linker, link_as_id, link_as_urn, patient_id
from ehr.demo.patient import PatientFactory
from ehr.demo.reference import reference_population
from ehr.demo.rng import stream, urn

DEFAULT_PER_PATIENT = 30
HEAVY_RESOURCES = 500

__all__ = [
    "reference_bundle", "patient_bundles", "iter_resources", "patient_resources", "patient_id", "is_heavy",
    "heavy_patient_ids", "DEFAULT_PER_PATIENT", "HEAVY_RESOURCES",
]


def is_heavy(index: int, heavy_every: int) -> bool:
    """Patients 0, k, 2k… are the heavy chronic ones when ``heavy_every`` = k > 0."""
    return heavy_every > 0 and index % heavy_every == 0


def _budget(seed: int, index: int, per_patient: int, heavy: bool) -> int:
    if heavy:
        return HEAVY_RESOURCES
    # Skewed like real records: most patients have few, some many (gamma, mean = per_patient).
    rng = stream(seed, "budget", index)
    return max(4, min(int(rng.gammavariate(3.0, per_patient / 3.0)), per_patient * 5))


def patient_resources(
    index: int, seed: int = 1, *, heavy: bool = False, per_patient: int = DEFAULT_PER_PATIENT, link: Linker = link_as_id
) -> list[dict]:
    """The resources of one patient (Patient first)."""
    factory = PatientFactory(
        seed, index, reference_population(seed), budget=_budget(seed, index, per_patient, heavy), heavy=heavy, link=link
    )
    return factory.build()


def _entry(res: dict) -> dict:
    res_type, res_id = res["resourceType"], res["id"]
    return {"fullUrl": urn(res_type, res_id), "resource": res, "request": {"method": "PUT", "url": f"{res_type}/{res_id}"}}


def _transaction(resources: list[dict]) -> dict:
    return {"resourceType": "Bundle", "type": "transaction", "entry": [_entry(r) for r in resources]}


def reference_bundle(seed: int = 1) -> dict:
    """Transaction Bundle of the shared population (a fresh copy: callers may mutate it)."""
    resources = orjson.loads(orjson.dumps(reference_population(seed).resources))
    return _transaction(resources)


def patient_bundles(
    n_patients: int, seed: int = 1, *, heavy_every: int = 0, per_patient: int = DEFAULT_PER_PATIENT, start: int = 0
) -> Iterator[dict]:
    """One transaction Bundle per patient ``start .. start+n_patients-1``, generated lazily."""
    for index in range(start, start + n_patients):
        yield _transaction(
            patient_resources(index, seed, heavy=is_heavy(index, heavy_every), per_patient=per_patient, link=link_as_urn)
        )


def iter_resources(
    n_patients: int, seed: int = 1, *, heavy_every: int = 0, per_patient: int = DEFAULT_PER_PATIENT,
    include_reference: bool = True,
) -> Iterator[dict]:
    """Flat stream: the reference population, then each patient's resources (``Type/id`` refs)."""
    if include_reference:
        yield from orjson.loads(orjson.dumps(reference_population(seed).resources))
    for index in range(n_patients):
        yield from patient_resources(index, seed, heavy=is_heavy(index, heavy_every), per_patient=per_patient)


def heavy_patient_ids(n_patients: int, seed: int, heavy_every: int) -> list[str]:
    return [patient_id(seed, i) for i in range(n_patients) if is_heavy(i, heavy_every)]
