"""The in-memory form of a (profiled) type: a tree of element definitions.

A base type (``Patient``, ``HumanName``) is a tree built from its snapshot.  A profile is
the same tree with copy-on-write changes: nodes it does not touch are shared with its base,
nodes it touches are cloned (``owner`` tells which tree a node belongs to).  Every node
remembers ``base`` -- the element of the base specification it constrains -- so the
validator can tell what a profile adds (its *delta*) and check only that when validating
against the profile: the base specification itself is checked once, separately.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

UNBOUNDED = 1 << 30
NOTHING = object()   # "no fixed/pattern value" (None/False/0 are legal fixed values)


def parse_max(value: str | None) -> int:
    if value is None or value == "*":
        return UNBOUNDED
    return int(value)


@dataclass(frozen=True, slots=True)
class TypeRef:
    code: str
    profiles: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()   # targetProfile canonicals (Reference, canonical, CodeableReference)


@dataclass(frozen=True, slots=True)
class Slicing:
    discriminators: tuple[tuple[str, str], ...]   # (type, path)
    rules: str = "open"                           # open | closed | openAtEnd
    ordered: bool = False


@dataclass(slots=True, eq=False)
class Invariant:
    key: str
    severity: str
    human: str
    expression: str
    source: str                                 # url of the structure declaring it
    evaluate: Callable[..., bool | None] | None = None   # None: not evaluable (recorded as skipped)


class ElementDef:
    """One element of a type or profile.  ``children is None`` means "those of my type"."""

    __slots__ = (
        "id", "path", "name", "json_name", "slice_name", "min", "max", "is_array", "types", "content_ref",
        "fixed", "pattern", "binding", "invariants", "slicing", "slices", "children",
        "type_variants", "attr", "owner", "base",
        # delta against ``base`` (filled for profile nodes by profiles.finalize)
        "d_card", "d_types", "d_binding", "d_invariants", "d_targets", "d_profiles",
        "hot_children", "hot", "plans",
    )

    def __init__(self, id: str, path: str, owner: Any):
        self.id = id
        self.path = path
        self.name = path.rsplit(".", 1)[-1]
        self.json_name = self.name[:-3] if self.name.endswith("[x]") else self.name
        self.slice_name: str | None = None
        self.min = 0
        self.max = UNBOUNDED
        self.is_array = False
        self.types: tuple[TypeRef, ...] = ()
        self.content_ref: ElementDef | str | None = None
        self.fixed: Any = NOTHING
        self.pattern: Any = NOTHING
        self.binding: tuple[str, str | None] | None = None
        self.invariants: tuple[Invariant, ...] = ()
        self.slicing: Slicing | None = None
        self.slices: list[ElementDef] = []
        self.children: dict[str, ElementDef] | None = None
        self.type_variants: dict[str, ElementDef] = {}
        self.attr = False
        self.owner = owner
        self.base: ElementDef = self
        self.d_card = False
        self.d_types: frozenset[str] | None = None
        self.d_binding: tuple[str, str | None] | None = None
        self.d_invariants: tuple[Invariant, ...] = ()
        self.d_targets: tuple[str, ...] | None = None
        self.d_profiles: dict[str, tuple[str, ...]] = {}
        self.hot_children: tuple[ElementDef, ...] = ()
        self.hot = False
        self.plans: dict[str, Any] = {}

    @property
    def is_choice(self) -> bool:
        return self.name.endswith("[x]")

    def type_codes(self) -> tuple[str, ...]:
        return tuple(t.code for t in self.types)

    def clone(self, owner: Any) -> "ElementDef":
        c = ElementDef.__new__(ElementDef)
        for slot in ElementDef.__slots__:
            setattr(c, slot, getattr(self, slot))
        c.owner = owner
        c.slices = list(self.slices)
        c.children = dict(self.children) if self.children is not None else None
        c.type_variants = dict(self.type_variants)
        c.plans = {}
        return c

    def __repr__(self) -> str:
        return f"<ElementDef {self.id} {self.min}..{'*' if self.max >= UNBOUNDED else self.max}>"


@dataclass(slots=True, eq=False)
class Structure:
    """A StructureDefinition ready for validation (its tree built on first use)."""

    url: str
    name: str
    type: str
    kind: str
    derivation: str           # specialization | constraint
    abstract: bool
    base_url: str | None
    source: dict              # compact form (profiles.validator.definitions)
    root: ElementDef | None = None
    regex: str | None = None
    index: dict[str, ElementDef] = field(default_factory=dict)   # path -> node (specializations)

    @property
    def is_profile(self) -> bool:
        return self.derivation == "constraint"
