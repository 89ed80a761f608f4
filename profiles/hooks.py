"""What the profiles layer checks on every write, inside the write's transaction.

- Every resource conforms to the base definition of its type (``check_base_definition``, run
  once per write by ``ehr.hooks.conform`` before anything reads the resource's content).
- A resource that claims a Sijill profile in ``meta.profile`` is validated against it; any error
  refuses the write (422, one issue per problem, in the request's language).
- A Sijill StructureDefinition, CodeSystem, ValueSet or ConceptMap must load: a bad one is refused
  with every problem listed, and the version in force stays in force.
"""
from __future__ import annotations

from ehr.i18n import current_language
from ehr.outcome import FHIRError

SIJILL = "https://fhir.sijill.ma/"
TERMINOLOGY_TYPES = {"CodeSystem", "ValueSet", "ConceptMap"}


def _errors(issues: list) -> list:
    return [i for i in issues if i.severity in ("error", "fatal")]


def check_base_definition(res: dict) -> list:
    """The in-house validator's walk of the base definition alone (the claimed profiles' deltas
    come after the write preparers, in ``check_moroccan_write``)."""
    from profiles.validator import get_validator

    return get_validator().validate(res, [], lang=current_language(), identifier_formats=False)


async def check_moroccan_write(_ctx, res: dict) -> None:
    res_type = res.get("resourceType")
    if str(res.get("url", "")).startswith(SIJILL):
        if res_type == "StructureDefinition":
            from profiles.validator import get_validator

            problems = _errors(get_validator().add_profile(res))
            if problems:
                raise FHIRError(422, problems)
        elif res_type in TERMINOLOGY_TYPES:
            from profiles.terminology import get_terminology

            problems = _errors(get_terminology().add(res))
            if problems:
                raise FHIRError(422, problems)
    claimed = [p for p in (res.get("meta") or {}).get("profile") or [] if str(p).startswith(SIJILL)]
    if claimed:
        from profiles.validator import get_validator

        get_validator().check(res, lang=current_language(), base=False)  # the base was walked already
