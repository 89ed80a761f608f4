"""The privacy Consents the access policy enforces, and the check that a written one is one of them.

A patient (or a counter agent for them) records ``Consent`` with scope ``patient-privacy``:

* **permit** people: ``provision.type = permit`` and ``provision.actor`` naming Practitioners,
  PractitionerRoles or Organizations: they get the access of a care relationship;
* **deny** people: ``provision.type = deny`` with ``provision.actor`` and no security label:
  they see nothing of the record, care relationship or not (only break-the-glass overrides);
* **hide categories**: ``provision.type = deny`` with ``provision.securityLabel`` (e.g.
  v3-ActCode ``PSY``, ``SEX``, ``STD``, ``HIV``, ``ETH``, ``SDV``): resources of the record
  labelled so (``meta.security``) are hidden from everyone (or only from the ``actor``s, when
  named), except the people named by nested ``provision`` exceptions of type ``permit``.

Only ``status = active`` Consents apply, within ``provision.period`` when one is given.  The
policy reads them from the index (standard parameters plus ``provision-type`` and
``exempt-actor``), so a Consent the rules above cannot express would be silently ignored: a
restricted caller's write of such a Consent is refused instead (422, with the element).
"""
from __future__ import annotations

from ehr.outcome import FHIRError, Issue

SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
PRIVACY = "patient-privacy"
ACTOR_TYPES = ("Practitioner", "PractitionerRole", "Organization", "RelatedPerson")
# Provision elements the policy does not enforce: a Consent using them would promise too much.
_UNENFORCED = ("action", "purpose", "class", "code", "data", "dataPeriod")


def _scopes(consent: dict) -> list[tuple[str | None, str | None]]:
    scope = consent.get("scope") or {}
    return [(c.get("system"), c.get("code")) for c in scope.get("coding") or [] if isinstance(c, dict)]


def is_privacy_consent(consent: dict) -> bool:
    return (SCOPE_SYSTEM, PRIVACY) in _scopes(consent)


def _actor_issues(actors: object, where: str) -> list[Issue]:
    issues = []
    for i, actor in enumerate(actors if isinstance(actors, list) else []):
        ref = ((actor or {}).get("reference") or {}).get("reference") if isinstance(actor, dict) else None
        if not isinstance(ref, str) or ref.split("/")[0] not in ACTOR_TYPES or ref.count("/") != 1:
            issues.append(Issue("value", f"An actor must be a literal reference to a {', '.join(ACTOR_TYPES)}",
                                expression=(f"{where}.actor[{i}].reference",)))
    return issues


def enforceable_issues(consent: dict) -> list[Issue]:
    """Why the policy could not enforce this Consent as written (empty: it can)."""
    if not is_privacy_consent(consent):
        return [Issue("business-rule", f"Consents recorded here have scope {SCOPE_SYSTEM}|{PRIVACY}",
                      expression=("Consent.scope",))]
    provision = consent.get("provision")
    if not isinstance(provision, dict) or provision.get("type") not in ("deny", "permit"):
        return [Issue("required", "provision.type (deny or permit) says what the Consent does",
                      expression=("Consent.provision.type",))]
    issues = [
        Issue("not-supported", f"provision.{name} is not enforced by this server; leave it out",
              expression=(f"Consent.provision.{name}",))
        for name in _UNENFORCED if name in provision
    ]
    actors, labels, nested = provision.get("actor") or [], provision.get("securityLabel") or [], provision.get("provision") or []
    issues += _actor_issues(actors, "Consent.provision")
    if provision["type"] == "permit":
        if not actors:
            issues.append(Issue("required", "A permit names who is permitted", expression=("Consent.provision.actor",)))
        if labels or nested:
            issues.append(Issue("not-supported", "A permit grants the whole record: no securityLabel, no nested provision",
                                expression=("Consent.provision",)))
        return issues
    if not actors and not labels:
        issues.append(Issue("required", "A deny names people (actor) or categories to hide (securityLabel)",
                            expression=("Consent.provision",)))
    for i, label in enumerate(labels):
        if not isinstance(label, dict) or not label.get("code") or not label.get("system"):
            issues.append(Issue("required", "A hidden category is a security label with system and code",
                                expression=(f"Consent.provision.securityLabel[{i}]",)))
    for i, exception in enumerate(nested):
        where = f"Consent.provision.provision[{i}]"
        if not labels:
            issues.append(Issue("not-supported", "Exceptions apply to hidden categories only", expression=(where,)))
            continue
        if not isinstance(exception, dict) or exception.get("type") != "permit" or not exception.get("actor"):
            issues.append(Issue("not-supported", "An exception permits named people: type permit with actor", expression=(where,)))
            continue
        extra = sorted(set(exception) - {"type", "actor", "id", "extension", "modifierExtension"})
        if extra:
            issues.append(Issue("not-supported", f"An exception only names people, not {', '.join(extra)}",
                                expression=(f"{where}.{extra[0]}",)))
        issues += _actor_issues(exception.get("actor"), where)
    return issues


def check_enforceable(consent: dict) -> None:
    issues = enforceable_issues(consent)
    if issues:
        raise FHIRError(422, issues)
