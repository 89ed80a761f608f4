"""Synthetic Moroccan population (patients, care, insurance) for demos, tests and benchmarks."""
from ehr.demo.chart import patient_id
from ehr.demo.generator import (
    heavy_patient_ids,
    is_heavy,
    iter_resources,
    patient_bundles,
    patient_resources,
    reference_bundle,
)

__all__ = [
    "reference_bundle", "patient_bundles", "iter_resources", "patient_resources", "patient_id", "is_heavy",
    "heavy_patient_ids",
]
