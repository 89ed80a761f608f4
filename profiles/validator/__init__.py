"""Profile validation: a resource against the base specification and its profiles.

    v = get_validator()
    issues = v.validate(resource)                     # base + loaded profiles of meta.profile
    issues = v.validate(resource, ["https://fhir.sijill.ma/StructureDefinition/..."], lang="ar")
    problems = v.add_profile(structure_definition)    # snapshot or differential-only

Issues are ``ehr.outcome.Issue`` with a FHIRPath ``expression`` (``Claim.item[2].net.value``)
and a message in French (default), Arabic or English.  See ``walker`` for what is checked.
"""
from __future__ import annotations

import logging
import threading
from functools import lru_cache
from typing import Iterable, Protocol

from ehr.outcome import FHIRError, Issue

from .definitions import compact_structure
from .invariants import InvariantCompiler
from .messages import LANGS, message, pick_language
from .model import Structure
from .registry import ProfileError, Registry
from .walker import Run, Walker

log = logging.getLogger(__name__)

__all__ = ["Validator", "get_validator", "Terminology", "IdentifierFormats", "pick_language"]


class Terminology(Protocol):
    def validate_code(self, valueset_url: str, system: str | None, code: str) -> bool | None:
        """True/False; None when the value set is unknown (then: a warning, not an error)."""


class IdentifierFormats(Protocol):
    def check(self, system: str, value: str) -> str | None:
        """None if OK (or the system is not known), else a message."""


class Validator:
    def __init__(self, terminology: Terminology | None = None, identifiers: IdentifierFormats | None = None):
        self.compiler = InvariantCompiler()
        self.registry = Registry(self.compiler)
        self.walker = Walker(self.registry, terminology, identifiers)
        self._lock = threading.Lock()

    # -- profiles -------------------------------------------------------------------------------
    def add_profile(self, structure_definition: dict) -> list[Issue]:
        """Compile and put in force a profile (snapshot, or differential-only on a base type or
        a loaded profile).  On any error nothing changes and the errors are returned; the
        previous version of the same url stays in force."""
        sd = structure_definition
        try:
            st = self._structure(sd)
        except ProfileError as exc:
            return [self._profile_issue(exc, "error")]
        warnings: list[ProfileError] = []
        with self._lock:
            try:
                st.root = self.registry.compile_profile(st, warnings)
            except ProfileError as exc:
                return [self._profile_issue(exc, "error")]
            self.registry.replace(st)
        return [self._profile_issue(w, "warning") for w in warnings]

    def _structure(self, sd: dict) -> Structure:
        if not isinstance(sd, dict) or sd.get("resourceType") != "StructureDefinition":
            raise ProfileError("sd-invalid", detail="resourceType must be StructureDefinition")
        for key in ("url", "type", "baseDefinition"):
            if not isinstance(sd.get(key), str) or not sd[key]:
                raise ProfileError("sd-invalid", detail=f"{key} is required")
        if sd.get("derivation", "constraint") != "constraint":
            raise ProfileError("sd-invalid", detail="only constraint profiles can be loaded (derivation = constraint)")
        part = "differential" if (sd.get("differential") or {}).get("element") else "snapshot"
        elements = (sd.get(part) or {}).get("element")
        if not isinstance(elements, list) or not elements:
            raise ProfileError("sd-invalid", detail="a differential or a snapshot with elements is required")
        for i, el in enumerate(elements):
            if not isinstance(el, dict) or not isinstance(el.get("path"), str):
                exc = ProfileError("sd-invalid", detail="every element needs a path")
                exc.where = f"StructureDefinition.{part}.element[{i}]"
                raise exc
        try:
            source = compact_structure({**sd, "derivation": "constraint"}, part)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError("sd-invalid", detail=f"malformed element ({exc})") from None
        return Registry._structure(source)

    @staticmethod
    def _profile_issue(exc: ProfileError, severity: str) -> Issue:
        code = "invalid" if severity == "error" else "informational"
        params = {k: (v if v is not None else "-") for k, v in exc.params.items()}
        return Issue(code, message(exc.kind, "fr", **params), severity, (exc.where,))

    def has_profile(self, url: str) -> bool:
        return self.registry.get(url) is not None

    @property
    def skipped_invariants(self) -> dict[str, str]:
        """Invariants not evaluated ("key: expression" -> reason), e.g. uses of resolve()."""
        return dict(self.compiler.skipped)

    # -- validation -----------------------------------------------------------------------------
    def validate(
        self, resource: dict, profiles: list[str] | None = None, *, lang: str = "fr", base: bool = True,
        identifier_formats: bool = True,
    ) -> list[Issue]:
        """Validate against the base definition of ``resourceType`` and then ``profiles`` --
        by default every profile of ``meta.profile`` that is loaded (unknown ones: a warning;
        unknown explicitly requested ones: an error).  ``base=False``: only what the profiles
        add, for a resource already walked against the base definition (writes).
        ``identifier_formats=False``: the Moroccan identifier formats are left to the profiles
        (a write that claims none is plain FHIR)."""
        lang = (lang or "fr").lower()[:2]
        run = Run(lang if lang in LANGS else "en", identifier_formats)
        walker = self.walker
        if not isinstance(resource, dict):
            walker.issue(run, "error", "structure", "Resource", "not-object", name="resource", type="Resource")
            return run.issues
        rtype = resource.get("resourceType")
        path = rtype if isinstance(rtype, str) else "Resource"
        if base:
            walker.resource(run, resource, path, contained=False, top=True)
        if isinstance(rtype, str) and rtype in self.registry.resource_types:
            explicit = profiles is not None
            if profiles is None:
                meta = resource.get("meta")
                profiles = meta.get("profile") if isinstance(meta, dict) else None
            run.resource = run.root = resource
            for url in profiles if isinstance(profiles, list) else ():
                walker.declared_profile(run, url, resource, rtype, path, explicit=explicit)
        return _unique(run.issues)

    def check(
        self, resource: dict, profiles: list[str] | None = None, *, lang: str = "fr", base: bool = True
    ) -> list[Issue]:
        """``validate`` for the write paths: raise ``FHIRError`` 422 carrying every issue when
        any is an error, else return the warnings (to add to the response's outcome)."""
        issues = self.validate(resource, profiles, lang=lang, base=base)
        if any(i.severity in ("error", "fatal") for i in issues):
            raise FHIRError(422, issues)
        return issues


def _unique(issues: Iterable[Issue]) -> list[Issue]:
    seen: set[Issue] = set()
    out = []
    for i in issues:
        if i not in seen:
            seen.add(i)
            out.append(i)
    return out


def _default_identifiers() -> IdentifierFormats | None:
    try:
        from profiles import identifiers
    except ImportError:
        return None
    return identifiers if callable(getattr(identifiers, "check", None)) else None


def _default_terminology() -> Terminology | None:
    try:
        from profiles.terminology import get_terminology   # provided by the terminology package
    except ImportError:
        return None
    return get_terminology()


def _load_shipped_profiles(validator: Validator) -> None:
    """The Moroccan profiles and extensions shipped in ``profiles/content``."""
    try:
        from profiles.content import structure_definitions
    except ImportError:
        return
    for sd in structure_definitions():
        for problem in validator.add_profile(sd):
            level = logging.ERROR if problem.severity == "error" else logging.WARNING
            log.log(level, "shipped profile %s: %s", sd.get("url"), problem.diagnostics)


@lru_cache(maxsize=1)
def get_validator() -> Validator:
    """The process-wide validator: base definitions, the shipped Moroccan profiles, the
    terminology service and the identifier formats."""
    validator = Validator(_default_terminology(), _default_identifiers())
    _load_shipped_profiles(validator)
    return validator
