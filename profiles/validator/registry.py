"""Structures by url and type, their element trees, and profile compilation.

Base types are trees built from their snapshots.  A profile (derivation ``constraint``) is
compiled by applying its elements -- a differential, or a snapshot read the same way --
onto a copy-on-write clone of its base tree, then computing, for every node it owns, what
it adds to the base specification (``ElementDef.d_*``) and which subtrees hold such
additions (``hot``).  Validating against a profile visits only hot subtrees.
"""
from __future__ import annotations

import logging
import re
from typing import Iterable

from .definitions import load_base
from .invariants import InvariantCompiler
from .model import NOTHING, UNBOUNDED, ElementDef, Slicing, Structure, TypeRef, parse_max
from .primitives import Checker, make_checker

log = logging.getLogger(__name__)

CORE_PREFIX = "http://hl7.org/fhir/StructureDefinition/"
EXTENSION_SLICING = Slicing((("value", "url"),), "open", False)
NATIVE_INVARIANTS = frozenset({"ele-1"})   # checked by the walker itself


class ProfileError(Exception):
    """A problem of a StructureDefinition: (message kind, params)."""

    def __init__(self, kind: str, **params: object):
        super().__init__(kind)
        self.kind = kind
        self.params = params
        self.where = "StructureDefinition"


def split_id(element_id: str) -> list[tuple[str, str | None]]:
    """``Observation.component:systolic.code`` -> [(Observation, None), (component, systolic), (code, None)]."""
    parts: list[tuple[str, str | None]] = []
    for seg in element_id.split("."):
        name, sep, slice_name = seg.partition(":")
        parts.append((name, slice_name if sep else None))
    return parts


def _cap(code: str) -> str:
    return code[:1].upper() + code[1:]


class Registry:
    def __init__(self, compiler: InvariantCompiler):
        self.compiler = compiler
        self.structures: dict[str, Structure] = {}
        self.by_type: dict[str, Structure] = {}      # base type name -> its specialization
        self.checkers: dict[str, Checker] = {}       # primitive type -> value checker
        self.resource_types: frozenset[str] = frozenset()
        self.broken: dict[str, ProfileError] = {}    # shipped profiles that do not compile
        self.generation = 0                           # bumped whenever a profile is (re)placed
        self._load_base()

    # -- loading ---------------------------------------------------------------------------
    def _load_base(self) -> None:
        resources = set()
        for url, src in load_base().items():
            st = self._structure(src)
            self.structures[url] = st
            if st.derivation == "specialization":
                self.by_type[st.type] = st
                if st.kind == "resource":
                    resources.add(st.type)
                elif st.kind == "primitive-type":
                    self.checkers[st.type] = make_checker(st.type, st.regex)
        self.resource_types = frozenset(resources)
        choice = {el["id"].rsplit(".", 1)[-1][:-3] for st in self.structures.values()
                  for el in st.source["elements"] if el["id"].endswith("[x]")}
        self.compiler.choice_names = frozenset(choice)
        self.compiler.type_names = frozenset(self.by_type)

    @staticmethod
    def _structure(src: dict) -> Structure:
        return Structure(url=src["url"], name=src.get("name") or src["url"], type=src["type"],
                         kind=src.get("kind") or "", derivation=src.get("derivation") or "specialization",
                         abstract=bool(src.get("abstract")), base_url=src.get("base"), source=src,
                         regex=src.get("regex"))

    def is_primitive(self, code: str) -> bool:
        return code in self.checkers

    def is_a(self, code: str, allowed: set[str]) -> bool:
        """Is type ``code`` one of ``allowed`` or a specialization of one (Patient is a
        Resource, Age a Quantity)?"""
        seen = 0
        while code and seen < 16:
            if code in allowed:
                return True
            st = self.by_type.get(code)
            if st is None or not st.base_url:
                return False
            code = st.base_url.rsplit("/", 1)[-1]
            seen += 1
        return False

    # -- lookup ----------------------------------------------------------------------------
    def get(self, url: str | None) -> Structure | None:
        """The structure with its tree built, or None if unknown or broken."""
        if not url:
            return None
        st = self.structures.get(url.split("|", 1)[0])
        if st is None:
            return None
        if st.root is None:
            if st.url in self.broken:
                return None
            try:
                self.build(st)
            except ProfileError as exc:
                log.error("structure %s cannot be compiled: %s %s", st.url, exc.kind, exc.params)
                self.broken[st.url] = exc
                return None
        return st

    def replace(self, st: Structure) -> None:
        """Put a compiled profile in force; profiles built on its previous version recompile
        on their next use."""
        self.structures[st.url] = st
        self.broken.pop(st.url, None)
        self.generation += 1
        stale = [st.url]
        while stale:
            url = stale.pop()
            for other in self.structures.values():
                if other is not st and other.base_url == url and other.is_profile:
                    if other.root is not None or other.url in self.broken:
                        other.root = None
                        self.broken.pop(other.url, None)
                        stale.append(other.url)

    def type_root(self, code: str) -> ElementDef | None:
        st = self.by_type.get(code)
        if st is None:
            return None
        if st.root is None:
            self.build(st)
        return st.root

    def extension(self, url: object) -> Structure | None:
        if not isinstance(url, str):
            return None
        st = self.structures.get(url)
        if st is None or st.type != "Extension" or not st.is_profile:
            return None
        return self.get(url)

    def children(self, node: ElementDef, code: str | None) -> dict[str, ElementDef] | None:
        """The child definitions of an element holding a value of type ``code``."""
        if node.children is not None:
            return node.children
        target = node.content_ref
        if isinstance(target, ElementDef):
            return self.children(target, code)
        if code is None:
            codes = {t.code for t in node.types}
            if len(codes) != 1:
                return None
            code = codes.pop()
        root = self.type_root(code)
        return root.children if root is not None else None

    def resolve_target_types(self, targets: Iterable[str]) -> frozenset[str] | None:
        """Resource types allowed by targetProfiles (None: anything, or not knowable)."""
        out = set()
        for url in targets:
            url = url.split("|", 1)[0]
            if url.startswith(CORE_PREFIX) and url[len(CORE_PREFIX):] in self.by_type:
                name = url[len(CORE_PREFIX):]
                st = self.by_type[name]
                if st.type in ("Resource", "DomainResource"):
                    return None
                out.add(st.type)
                continue
            st = self.structures.get(url)
            if st is None:
                return None
            out.add(st.type)
        return frozenset(out) if out else None

    # -- building trees --------------------------------------------------------------------
    def build(self, st: Structure) -> None:
        if st.derivation == "specialization":
            self._build_specialization(st)
        else:
            st.root = self.compile_profile(st, [])

    def _build_specialization(self, st: Structure) -> None:
        index: dict[str, ElementDef] = {}
        refs: list[tuple[ElementDef, str]] = []
        root = None
        for el in st.source["elements"]:
            path = el["id"]
            node = ElementDef(path, path, st)
            self._apply_new(node, el, st)
            if "cr" in el:
                refs.append((node, el["cr"]))
            index[path] = node
            if root is None:
                root = node
                continue
            parent = index[path.rsplit(".", 1)[0]]
            if parent.children is None:
                parent.children = {}
            parent.children[node.name] = node
        for node, ref in refs:
            node.content_ref = index[ref.partition("#")[2]]
        st.index = index
        st.root = root

    def _apply_new(self, node: ElementDef, el: dict, st: Structure) -> None:
        node.min = el.get("min", 0)
        node.max = parse_max(el.get("max"))
        node.is_array = (el.get("bmax") or el.get("max") or "1") != "1"
        node.types = tuple(TypeRef(t["c"], tuple(t.get("p", ())), tuple(t.get("tp", ()))) for t in el.get("t", ()))
        node.binding = tuple(el["b"]) if "b" in el else None
        node.invariants = self._invariants(el.get("k", ()), st)
        if "sl" in el:
            node.slicing = Slicing(tuple(tuple(d) for d in el["sl"]["d"]), el["sl"]["r"], el["sl"]["o"])
        node.attr = bool(el.get("attr"))
        if "fx" in el:
            node.fixed = el["fx"]
        if "pt" in el:
            node.pattern = el["pt"]

    def _invariants(self, raw: Iterable, st: Structure) -> tuple:
        out = []
        for key, severity, human, expression in raw:
            if key in NATIVE_INVARIANTS:
                continue
            out.append(self.compiler.compile(key, severity, human, expression, st.url))
        return tuple(out)

    # -- profiles --------------------------------------------------------------------------
    def compile_profile(self, st: Structure, warnings: list[ProfileError]) -> ElementDef:
        """Apply ``st``'s elements onto its base; raise ProfileError on the first error."""
        base = self.get(st.base_url)
        if base is None or base.root is None:
            raise ProfileError("sd-base-unknown", base=st.base_url)
        if base.type != st.type:
            raise ProfileError("sd-invalid", detail=f"type {st.type} differs from base type {base.type}")
        owner = st
        root = base.root.clone(owner)
        cr_fixups: list[tuple[ElementDef, str]] = []
        part = st.source.get("part", "differential")
        where: dict[str, str] = {}            # element id -> its place in the StructureDefinition
        folds: dict[int, str] = {}            # node -> the one slice name folded into it
        for i, el in enumerate(st.source["elements"]):
            where[el["id"]] = f"StructureDefinition.{part}.element[{i}]"
            try:
                parts = split_id(el["id"])
                if parts[0][0] != st.type:
                    raise ProfileError("sd-path-unknown", path=el["id"])
                node = root
                for name, slice_name in parts[1:]:
                    node = self._child_for_write(node, name, owner, el["id"])
                    if slice_name is not None:
                        node = self._slice_for_write(node, slice_name, owner, folds, warnings)
                self._apply(node, el, owner, st, is_root=len(parts) == 1, warnings=warnings)
            except ProfileError as exc:
                exc.where = where[el["id"]]
                raise
            if "cr" in el:
                cr_fixups.append((node, el["cr"]))
        for node, ref in cr_fixups:
            path = ref.partition("#")[2]
            target = self._find(root, path)
            if target is None:
                raise ProfileError("sd-path-unknown", path=ref)
            node.content_ref = target
            node.children = None
        try:
            self._finalize(root, owner)
        except ProfileError as exc:
            exc.where = where.get(str(exc.params.get("path")), exc.where)
            raise
        return root

    def _find(self, root: ElementDef, path: str) -> ElementDef | None:
        node = root
        for name in path.split(".")[1:]:
            kids = node.children
            if kids is None or name not in kids:
                return None
            node = kids[name]
        return node

    def _owned_children(self, node: ElementDef, owner: Structure, where: str) -> dict[str, ElementDef]:
        if node.children is None:
            target = node.content_ref
            if isinstance(target, ElementDef):
                kids = self.children(target, None)
            else:
                codes = sorted({t.code for t in node.types})
                if len(codes) != 1:
                    raise ProfileError("sd-children", path=where, types=", ".join(codes) or "-")
                root = self.type_root(codes[0])
                if root is None or root.children is None:
                    raise ProfileError("sd-children", path=where, types=codes[0])
                kids = root.children
            node.children = dict(kids or {})
            node.content_ref = None
        return node.children

    def _child_for_write(self, parent: ElementDef, name: str, owner: Structure, where: str) -> ElementDef:
        kids = self._owned_children(parent, owner, where)
        child = kids.get(name)
        if child is None:
            # renamed choice: "valueQuantity" constrains value[x] when it is a Quantity
            for cname, c in kids.items():
                if c.is_choice and name.startswith(c.json_name):
                    suffix = name[len(c.json_name):]
                    for t in c.types:
                        if _cap(t.code) == suffix:
                            if c.owner is not owner:
                                c = kids[cname] = c.clone(owner)
                            return self._variant_for_write(c, t.code, owner)
            raise ProfileError("sd-path-unknown", path=where)
        if child.owner is not owner:
            child = kids[name] = child.clone(owner)
        return child

    def _variant_for_write(self, choice: ElementDef, code: str, owner: Structure) -> ElementDef:
        variant = choice.type_variants.get(code)
        if variant is None:
            variant = choice.clone(owner)
            variant.id = f"{choice.id}:{choice.json_name}{_cap(code)}"
            variant.types = tuple(t for t in choice.types if t.code == code)
            variant.slices, variant.slicing, variant.type_variants = [], None, {}
            variant.min = 0
            variant.children = None
        elif variant.owner is not owner:
            variant = variant.clone(owner)
        choice.type_variants[code] = variant
        return variant

    def _slice_for_write(self, sliced: ElementDef, slice_name: str, owner: Structure, folds: dict[int, str],
                         warnings: list[ProfileError]) -> ElementDef:
        if sliced.is_choice and slice_name.startswith(sliced.json_name):
            for t in sliced.types:
                if sliced.json_name + _cap(t.code) == slice_name:
                    return self._variant_for_write(sliced, t.code, owner)
        if sliced.slicing is None and not sliced.slices and sliced.json_name not in ("extension", "modifierExtension"):
            # A lone "slice" of an element that is not sliced (HL7's own catalog and
            # familymemberhistory-genetic do this): it constrains the element itself.
            folded = folds.get(id(sliced))
            if folded is None:
                folds[id(sliced)] = slice_name
                warnings.append(ProfileError("sd-slice-folded", path=f"{sliced.id}:{slice_name}"))
                return sliced
            if folded == slice_name:
                return sliced
            raise ProfileError("sd-slicing", path=f"{sliced.id}:{slice_name}")
        for i, s in enumerate(sliced.slices):
            if s.slice_name == slice_name:
                if s.owner is not owner:
                    s = sliced.slices[i] = s.clone(owner)
                return s
        s = sliced.clone(owner)
        s.id = f"{sliced.id}:{slice_name}"
        s.slice_name = slice_name
        s.slices, s.slicing, s.type_variants = [], None, {}
        s.min = 0
        sliced.slices.append(s)
        return s

    def _apply(self, node: ElementDef, el: dict, owner: Structure, st: Structure, *, is_root: bool,
               warnings: list[ProfileError]) -> None:
        if not is_root:
            new_min = el.get("min", node.min)
            new_max = parse_max(el["max"]) if "max" in el else node.max
            # a profile may only narrow what its base allows (slices and type variants
            # start from 0 and share their element's maximum)
            limit_min = 0 if ":" in node.id.rsplit(".", 1)[-1] else node.min
            if new_min > new_max or new_min < limit_min or new_max > node.max:
                show = lambda m: "*" if m >= UNBOUNDED else str(m)  # noqa: E731
                raise ProfileError("sd-cardinality", path=el["id"], min=new_min, max=show(new_max),
                                   bmin=node.base.min, bmax=show(node.base.max))
            node.min, node.max = new_min, new_max
        if "t" in el:
            allowed = {t.code for t in node.types}
            types = tuple(TypeRef(t["c"], tuple(t.get("p", ())), tuple(t.get("tp", ()))) for t in el["t"])
            for t in types:
                if allowed and not self.is_a(t.code, allowed):
                    raise ProfileError("sd-type", path=el["id"], type=t.code, allowed=", ".join(sorted(allowed)))
            node.types = types
        if "fx" in el:
            node.fixed = el["fx"]
        if "pt" in el:
            node.pattern = el["pt"]
        if "b" in el:
            node.binding = tuple(el["b"])
        if "k" in el:
            current = {i.key: i for i in node.invariants}
            for inv in self._invariants(el["k"], st):
                if inv.evaluate is None:
                    warnings.append(ProfileError("sd-invariant", key=inv.key,
                                                 detail=self.compiler.skipped.get(f"{inv.key}: {inv.expression}", "")))
                current[inv.key] = inv
            node.invariants = tuple(current.values())
        if "sl" in el:
            node.slicing = Slicing(tuple(tuple(d) for d in el["sl"]["d"]), el["sl"]["r"], el["sl"]["o"])

    # -- what a profile adds ---------------------------------------------------------------
    def _finalize(self, root: ElementDef, owner: Structure) -> None:
        owned: list[ElementDef] = []
        stack = [root]
        seen: set[int] = set()
        while stack:
            node = stack.pop()
            if id(node) in seen or node.owner is not owner:
                continue
            seen.add(id(node))
            owned.append(node)
            if node.slices and node.slicing is None:
                if node.json_name in ("extension", "modifierExtension"):
                    node.slicing = EXTENSION_SLICING
                else:
                    raise ProfileError("sd-slicing", path=node.slices[0].id)
            self._delta(node)
            stack.extend(node.children.values() if node.children else ())
            stack.extend(node.slices)
            stack.extend(node.type_variants.values())
        # hot flags to a fixpoint: contentReference makes the tree recursive
        for node in owned:
            node.hot, node.hot_children = False, ()
        changed = True
        while changed:
            changed = False
            for node in owned:
                hot_children = tuple(c for c in (node.children or {}).values() if c.hot)
                hot = bool(node.d_card or node.d_types is not None or node.d_binding or node.d_invariants
                           or node.d_targets is not None or node.d_profiles or node.fixed is not NOTHING
                           or node.pattern is not NOTHING or node.slices or hot_children
                           or any(v.hot or v.max == 0 or v.min > 0 for v in node.type_variants.values())
                           or (isinstance(node.content_ref, ElementDef) and node.content_ref.hot))
                if hot != node.hot or hot_children != node.hot_children:
                    node.hot, node.hot_children = hot, hot_children
                    changed = True

    def _delta(self, node: ElementDef) -> None:
        b = node.base
        node.d_card = not node.slice_name and (node.min, node.max) != (b.min, b.max)
        codes, base_codes = {t.code for t in node.types}, {t.code for t in b.types}
        node.d_types = frozenset(codes) if codes and codes != base_codes else None
        base_profiles = {t.code: t.profiles for t in b.types}
        node.d_profiles = {t.code: t.profiles for t in node.types
                           if t.profiles and t.profiles != base_profiles.get(t.code)}
        base_targets = {t.code: t.targets for t in b.types}
        narrowed = [t for t in node.types if t.targets and t.targets != base_targets.get(t.code)]
        node.d_targets = tuple(u for t in narrowed for u in t.targets) if narrowed else None
        node.d_binding = node.binding if node.binding != b.binding else None
        base_inv = {(i.key, i.expression) for i in b.invariants}
        node.d_invariants = tuple(i for i in node.invariants if (i.key, i.expression) not in base_inv)


_TOKEN = re.compile(r"\s*(\$this|[A-Za-z_][A-Za-z0-9_]*(?:\((?:'[^']*'|[^)'])*\))?)\s*(?:\.|$)")


def split_path(path: str) -> list[str] | None:
    """Discriminator path segments: ``extension('http://x.y').value`` -> 2 segments."""
    out, pos = [], 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if m is None:
            return None
        out.append(m.group(1))
        pos = m.end()
    return out
