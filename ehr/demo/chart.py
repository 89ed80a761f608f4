"""What every builder of a patient's chart shares: the patient's random stream, resource ids,
and references (urn:uuid inside a transaction Bundle, ``Type/id`` in a flat stream)."""
from __future__ import annotations

import random
from datetime import date
from typing import Callable

from ehr.demo import places
from ehr.demo.reference import CityServices, ReferencePopulation
from ehr.demo.rng import stream, urn

# A resource reference: (type, id) -> {"reference": ...}
Linker = Callable[[str, str], dict]


def link_as_urn(res_type: str, res_id: str) -> dict:
    return {"reference": urn(res_type, res_id)}


def link_as_id(res_type: str, res_id: str) -> dict:
    return {"reference": f"{res_type}/{res_id}"}


def patient_id(seed: int, index: int) -> str:
    return f"pat-{seed}-{index}"


class Chart:
    """Patient ``index`` of population ``seed``: identity, stream and linking."""

    # Set by the demographics step, read by the clinical builders.
    gender: str
    born: date
    age: int
    city: places.City
    services: CityServices
    gp: tuple[str, str]  # (practitioner id, organization id) of the family doctor

    def __init__(self, seed: int, index: int, ref: ReferencePopulation, link: Linker) -> None:
        self.seed, self.index, self.ref, self.link = seed, index, ref, link
        self.rng: random.Random = stream(seed, "patient", index)
        self.id = patient_id(seed, index)
        self.n = 0
        self._links: dict[tuple[str, str], str] = {}
        self._subject_ref = self._link("Patient", self.id)["reference"]  # every resource points here

    def _next_id(self, abbr: str) -> str:
        self.n += 1
        return f"{abbr}-{self.seed}-{self.index}-{self.n}"

    def _link(self, res_type: str, res_id: str) -> dict:
        """A reference to one of this patient's resources (memoised: urn:uuid costs a SHA-1)."""
        key = (res_type, res_id)
        ref = self._links.get(key)
        if ref is None:
            ref = self._links[key] = self.link(res_type, res_id)["reference"]
        return {"reference": ref}

    def _subject(self) -> dict:
        return {"reference": self._subject_ref}  # a fresh dict: consumers may rewrite it in place

    def _doctor(self, specialty: str) -> tuple[str, str]:
        options = self.services.doctors[specialty]
        return options[self.rng.randrange(len(options))]

    def _home(self) -> dict:
        # The household's address, rebuilt from its own stream so patient and guardian share it.
        return places.address(stream(self.seed, "home", self.index), self.city)

    def _pick(self, ids: list[str]) -> str:
        return ids[self.rng.randrange(len(ids))]

