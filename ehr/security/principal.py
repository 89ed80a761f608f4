"""Who is calling: the verified token turned into a role, a FHIR identity and scopes."""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from ehr.outcome import FHIRError
from ehr.security.roles import TOKEN_ROLES, Role, role_allows
from ehr.security.scopes import ScopeSet
from ehr.settings import Settings
from ehr.store.clock import now_us

_REFERENCE = re.compile(r"(?:^|/)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})/?$")
_USER_TYPES = frozenset({"Patient", "Practitioner", "PractitionerRole", "RelatedPerson", "Person", "Organization", "Device"})


@dataclass(frozen=True)
class BreakGlassGrant:
    """Emergency access to one patient outside any care relationship, for a limited time."""

    patient: str  # "Patient/<id>"
    reason: str
    granted_at: int  # epoch µs
    expires_at: int

    def active(self, at_us: int | None = None) -> bool:
        return (at_us if at_us is not None else now_us()) < self.expires_at


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    scopes: ScopeSet = ScopeSet()
    fhir_user: str | None = None  # relative reference: "Practitioner/123", "Patient/456"
    fund: str | None = None  # insurers: "Organization/<fund>"
    client_id: str | None = None
    token_id: str | None = None  # jti, for revocation and the audit trail (BALP agent.policy)
    issuer: str | None = None
    expires_at: int | None = None  # epoch µs
    patient_context: str | None = None  # SMART launch context "Patient/<id>", from patient/ launches
    is_system: bool = False  # client-credentials token: no human user
    break_glass: tuple[BreakGlassGrant, ...] = field(default_factory=tuple)

    @classmethod
    def unrestricted(cls, subject: str = "system") -> "Principal":
        """For in-process work (CLI, auth_required=False): every interaction, no row rules."""
        return cls(subject=subject, role=Role.UNRESTRICTED, scopes=ScopeSet.parse("system/*.cruds"), is_system=True)

    def allows(self, res_type: str, interaction: str) -> bool:
        """Role ⊓ scopes: the role's ceiling, narrowed by what the token's scopes grant."""
        if not role_allows(self.role, res_type, interaction):
            return False
        return self.role is Role.UNRESTRICTED or self.scopes.allows(res_type, interaction)

    def require(self, res_type: str, interaction: str) -> None:
        if not role_allows(self.role, res_type, interaction):
            raise FHIRError.of(
                403, "forbidden", f"The {self.role.value} role may not {_VERBS[interaction]} {res_type} resources"
            )
        if self.role is not Role.UNRESTRICTED and not self.scopes.allows(res_type, interaction):
            raise FHIRError.of(
                403,
                "forbidden",
                f"The token's scopes do not grant {_VERBS[interaction]} on {res_type}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="user/{res_type}.{interaction}"'},
            )

    def break_glass_for(self, patient: str, at_us: int | None = None) -> BreakGlassGrant | None:
        at = at_us if at_us is not None else now_us()
        return next((g for g in self.break_glass if g.patient == patient and g.active(at)), None)

    def with_break_glass(self, grant: BreakGlassGrant) -> "Principal":
        return replace(self, break_glass=(*self.break_glass, grant))


_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


def relative_reference(value: Any, allowed: frozenset[str] | None = None) -> str | None:
    """``https://host/fhir/Practitioner/1`` or ``Practitioner/1`` → ``Practitioner/1``."""
    if not isinstance(value, str):
        return None
    m = _REFERENCE.search(value.strip())
    if not m or (allowed is not None and m.group(1) not in allowed):
        return None
    return f"{m.group(1)}/{m.group(2)}"


def forbidden(diagnostics: str) -> FHIRError:
    return FHIRError.of(403, "forbidden", diagnostics)


def _role(claims: Mapping[str, Any], settings: Settings, fhir_user: str | None) -> Role:
    raw = claims.get(settings.role_claim)
    if isinstance(raw, list):
        known = {r for r in raw if r in TOKEN_ROLES}
        if len(known) > 1:
            raise forbidden(f"The token carries several roles {sorted(known)}; one token must act in one role")
        raw = next(iter(known), None)
    if isinstance(raw, str):
        if raw not in TOKEN_ROLES:
            raise forbidden(f"Unknown role {raw!r} in the token")
        return Role(raw)
    if fhir_user and fhir_user.startswith("Patient/"):
        return Role.PATIENT  # a patient-facing provider need not know our role names
    raise forbidden(f"The token names no role (claim {settings.role_claim!r}) and its fhirUser implies none")


def _launch_patient(value: Any) -> str | None:
    # SMART sends the bare id ("123"); some providers send a reference.
    if isinstance(value, str) and "/" not in value:
        value = f"Patient/{value}"
    return relative_reference(value, frozenset({"Patient"}))


def principal_from_claims(claims: Mapping[str, Any], settings: Settings) -> Principal:
    """A Principal from verified claims; 403 when they do not say who may do what."""
    fhir_user = relative_reference(claims.get(settings.fhir_user_claim), _USER_TYPES)
    role = _role(claims, settings, fhir_user)
    client_id = claims.get("client_id") or claims.get("azp")
    subject = claims.get("sub") or client_id
    if not isinstance(subject, str) or not subject:
        raise forbidden("The token has no subject")
    fund = relative_reference(claims.get(settings.fund_claim), frozenset({"Organization"}))
    if role is Role.INSURER and fund is None:
        raise forbidden("An insurer token must name its fund (an Organization reference)")
    if role is Role.PATIENT and (fhir_user is None or not fhir_user.startswith(("Patient/", "RelatedPerson/"))):
        raise forbidden("A patient token must carry fhirUser Patient/... or RelatedPerson/...")
    raw_scope = claims.get("scope", claims.get("scp"))
    scope_text = " ".join(raw_scope) if isinstance(raw_scope, list) else raw_scope
    exp = claims.get("exp")
    return Principal(
        subject=subject,
        role=role,
        scopes=ScopeSet.parse(scope_text if isinstance(scope_text, str) else None),
        fhir_user=fhir_user,
        fund=fund,
        client_id=client_id if isinstance(client_id, str) else None,
        token_id=claims.get("jti") if isinstance(claims.get("jti"), str) else None,
        issuer=claims.get("iss"),
        expires_at=int(exp) * 1_000_000 if isinstance(exp, (int, float)) else None,
        patient_context=_launch_patient(claims.get("patient")),
        # RFC 9068: a client-credentials token's subject is the client itself.
        is_system=isinstance(client_id, str) and subject == client_id,
    )
