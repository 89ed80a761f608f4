"""Walking a JSON instance: once against the base specification, once per profile.

*Full mode* (here) checks everything the base specification says about every value:
known properties, JSON shapes, cardinality, primitive formats, choice types, invariants,
bindings, reference targets, identifier formats, known extensions, type profiles.

*Delta mode* (``profile_checks``) checks what a profile adds, along its hot subtrees only.

Per (element, type) the keys, required children and checks are compiled once into an
``ItemPlan`` cached on the element definition.
"""
from __future__ import annotations

from typing import Any

from ehr.outcome import Issue

from .messages import message
from .model import NOTHING, ElementDef, Structure
from .primitives import json_type_name
from .profile_checks import MAX_DEPTH, ProfileChecks, Unsupported
from .registry import Registry
from .values import cap, show

P, C, R, X = 0, 1, 2, 3          # primitive, complex, resource, "_x" extension of a primitive
NONE, REFERENCE, IDENTIFIER, EXTENSION = 0, 1, 2, 3
CODED = frozenset({"Coding", "CodeableConcept", "Quantity", "CodeableReference"})
ENFORCED = frozenset({"required", "extensible"})
SPECIAL = {"Reference": REFERENCE, "Identifier": IDENTIFIER, "Extension": EXTENSION}


class Run:
    """The state of one validation call."""

    __slots__ = ("issues", "lang", "resource", "root", "warned", "depth", "codes", "identifier_formats")

    def __init__(self, lang: str, identifier_formats: bool = True):
        self.issues: list[Issue] = []
        self.lang = lang
        self.resource: dict = {}
        self.root: dict = {}
        self.warned: set[tuple[str, str]] = set()   # one warning per unknown value set / profile
        self.depth = 0
        self.codes: dict[tuple, bool | None] = {}    # terminology answers, asked once per run
        # Moroccan identifier formats (a CIN, an INPE): not part of the base definition (writes
        # leave them to the profiles claimed, $validate checks them)
        self.identifier_formats = identifier_formats


class ItemPlan:
    __slots__ = ("kind", "code", "check", "keys", "required", "invariants", "fp_type", "binding",
                 "targets", "profiles", "resource_root", "special", "fast")


class KeySpec:
    """What a JSON property of a complex value is: which child, which type, how to walk it."""

    __slots__ = ("child", "code", "kind", "choice", "label", "plan", "single", "ext_key")

    def __init__(self, child: ElementDef, code: str, kind: int, choice: bool, key: str):
        self.child, self.code, self.kind, self.choice = child, code, kind, choice
        self.label = f".{child.json_name}.ofType({code})" if choice else f".{child.json_name}"
        self.plan: ItemPlan | None = None
        self.single = not child.is_array
        self.ext_key = "_" + key


class Walker(ProfileChecks):
    """Full mode here; delta mode, slicing and discriminators in ``profile_checks``."""

    def __init__(self, registry: Registry, terminology: Any = None, identifiers: Any = None):
        self.registry = registry
        self.terminology = terminology
        self.identifiers = identifiers
        self._profiles: dict[tuple[str, ...], tuple] = {}   # type profiles -> (generation, known, unknown)
        self._element_node = registry.type_root("Element")
        self._element_plan = self.plan(self._element_node, "Element")

    # -- issues ------------------------------------------------------------------------------
    @staticmethod
    def issue(run: Run, severity: str, issue_type: str, path: str, kind: str, /, **params: object) -> None:
        run.issues.append(Issue(issue_type, message(kind, run.lang, **params), severity, (path,)))

    def warn_once(self, run: Run, kind: str, key: str, path: str, /, **params: object) -> None:
        if (kind, key) not in run.warned:
            run.warned.add((kind, key))
            self.issue(run, "warning", "not-found", path, kind, **params)

    # -- plans -------------------------------------------------------------------------------
    def plan(self, node: ElementDef, code: str) -> ItemPlan:
        plan = node.plans.get(code)
        if plan is not None:
            return plan
        reg = self.registry
        p = ItemPlan()
        p.code, p.check, p.keys, p.required = code, None, {}, ()
        p.resource_root = node.path == code and code in reg.resource_types
        p.special = SPECIAL.get(code, NONE)
        inline = node.children is not None or isinstance(node.content_ref, ElementDef)
        if reg.is_primitive(code):
            p.kind, p.check = P, reg.checkers[code]
        elif code == "Resource" and not inline:
            p.kind = R
        else:
            p.kind = C
            kids = reg.children(node, code) or {}
            keys: dict[str, tuple] = {}
            required = []
            for child in kids.values():
                names = []
                if child.is_choice:
                    for t in child.types:
                        k = child.json_name + cap(t.code)
                        kind = self._kind(t.code)
                        keys[k] = KeySpec(child, t.code, kind, True, k)
                        names.append(k)
                        if kind == P:
                            keys["_" + k] = KeySpec(child, t.code, X, True, k)
                            names.append("_" + k)
                else:
                    ccode = child.types[0].code if child.types else "BackboneElement"
                    kind = self._kind(ccode) if (child.children is None and child.content_ref is None) else C
                    keys[child.name] = KeySpec(child, ccode, kind, False, child.name)
                    names.append(child.name)
                    if kind == P and not child.attr:
                        keys["_" + child.name] = KeySpec(child, ccode, X, False, child.name)
                        names.append("_" + child.name)
                if child.min > 0:
                    required.append((child, tuple(names)))
            p.keys, p.required = keys, tuple(required)
        invariants = list(node.invariants)
        if not inline and not p.resource_root and p.kind != R:
            type_root = reg.type_root(code)
            if type_root is not None and type_root is not node:
                have = {(i.key, i.expression) for i in invariants}
                invariants += [i for i in type_root.invariants if (i.key, i.expression) not in have]
        p.invariants = tuple(invariants)
        p.fp_type = self.fp_type(node, code)
        p.binding = node.binding if node.binding and node.binding[0] in ENFORCED and node.binding[1] else None
        targets = [u for t in node.types if t.code == code for u in t.targets]
        p.targets = reg.resolve_target_types(targets) if targets and code == "Reference" else None
        p.profiles = tuple(u for t in node.types if t.code == code for u in t.profiles)
        # a primitive needing nothing but its format check and binding
        p.fast = p.kind == P and not p.invariants and not p.profiles
        node.plans[code] = p
        return p

    def _kind(self, code: str) -> int:
        if self.registry.is_primitive(code):
            return P
        return R if code == "Resource" else C

    @staticmethod
    def fp_type(node: ElementDef, code: str | None) -> str:
        """The type name fhirpathpy needs to resolve children of this value."""
        if code in (None, "BackboneElement", "Element") and (node.children is not None or node.content_ref):
            target = node.content_ref if isinstance(node.content_ref, ElementDef) else node
            return target.base.path
        return code or node.base.path

    # -- full mode -----------------------------------------------------------------------------
    def resource(self, run: Run, res: dict, path: str, *, contained: bool, top: bool) -> None:
        rtype = res.get("resourceType")
        if not isinstance(rtype, str):
            self.issue(run, "error", "structure", path, "resource-type-missing")
            return
        st = self.registry.by_type.get(rtype)
        if st is None or st.kind != "resource":
            self.issue(run, "error", "structure", path, "resource-type-unknown", type=rtype)
            return
        if st.abstract:
            self.issue(run, "error", "structure", path, "resource-type-abstract", type=rtype)
            return
        if run.depth >= MAX_DEPTH:
            return
        root = self.registry.type_root(rtype)
        plan = root.plans.get(rtype) or self.plan(root, rtype)
        saved = run.resource, run.root
        run.resource = res
        if not contained:
            run.root = res
        run.depth += 1
        try:
            self.complex(run, plan, res, path)
            for inv in plan.invariants:
                if contained and inv.key == "dom-6":
                    continue           # as HL7's validator: narrative is the container's job
                self.invariant(run, inv, res, rtype, path)
            if not top:
                meta = res.get("meta")
                for url in (meta.get("profile") if isinstance(meta, dict) else None) or ():
                    self.declared_profile(run, url, res, rtype, path)
        finally:
            run.depth -= 1
            run.resource, run.root = saved

    def declared_profile(self, run: Run, url: Any, res: dict, rtype: str, path: str, explicit: bool = False) -> None:
        st = self.registry.get(url) if isinstance(url, str) else None
        if st is None:
            if explicit:
                self.issue(run, "error", "not-found", path, "profile-unknown", profile=url)
            else:
                self.warn_once(run, "profile-unknown", str(url), path, profile=url)
            return
        if st.type != rtype:
            self.issue(run, "error", "structure", path, "profile-type", profile=url, expected=st.type, type=rtype)
            return
        if st.is_profile:
            self.conform(run, st, res, path)

    def complex(self, run: Run, plan: ItemPlan, value: dict, path: str) -> None:
        keys = plan.keys
        choices = None
        for key, v in value.items():
            spec = keys.get(key)
            if spec is None:
                if key == "resourceType" and plan.resource_root:
                    continue
                self.issue(run, "error", "structure", f"{path}.{key}", "unknown-element", name=key, type=plan.code)
                continue
            kind = spec.kind
            if kind == P:
                ext = value.get(spec.ext_key)
            elif kind == X:
                if key[1:] in value:
                    continue               # handled with its value
                ext, v = v, None
            else:
                ext = None
            if spec.choice:
                child = spec.child
                if choices is None:
                    choices = {}
                other = choices.get(child)
                if other is not None and other != spec.code:
                    self.issue(run, "error", "structure", f"{path}.{child.json_name}", "choice-multiple",
                               name=child.name, found=f"{other}, {spec.code}")
                choices[child] = spec.code
            if spec.single and ext is None and type(v) is not list:
                # fast path for the common case: one value, no primitive extension
                item_plan = spec.plan
                if item_plan is None:
                    item_plan = spec.plan = self.plan(spec.child, spec.code)
                if item_plan.fast and v is not None:
                    err = item_plan.check(v)
                    if err is not None:
                        self.issue(run, "error", "value" if err != "json-type" else "structure", path + spec.label,
                                   err, value=show(v), type=item_plan.code, json=json_type_name(item_plan.code))
                    elif item_plan.binding is not None:
                        self.bind(run, item_plan.binding, item_plan.code, v, path + spec.label)
                    continue
                self.item(run, spec.child, item_plan, v, None, path + spec.label)
                continue
            self.occurrences(run, spec, v, ext, path)
        for child, names in plan.required:
            for n in names:
                if n in value:
                    break
            else:
                self.issue(run, "error", "required", f"{path}.{child.json_name}", "min",
                           name=child.json_name, min=child.min, count=0)

    def occurrences(self, run: Run, spec: KeySpec, v: Any, ext: Any, path: str) -> None:
        child = spec.child
        base = path + spec.label
        plan = spec.plan
        if plan is None:
            plan = spec.plan = self.plan(child, spec.code)
        if child.is_array:
            if v is not None and type(v) is not list:
                self.issue(run, "error", "structure", base, "array-expected", name=child.json_name)
                v = [v]
            if ext is not None and type(ext) is not list:
                self.issue(run, "error", "structure", base, "array-expected", name="_" + child.json_name)
                ext = [ext]
            n = len(v) if v is not None else 0
            ne = len(ext) if ext is not None else 0
            if n and ne and n != ne:
                self.issue(run, "error", "structure", base, "array-mismatch", name=child.json_name)
            count = n if n > ne else ne
            if count == 0:
                self.issue(run, "error", "structure", base, "empty-array", name=child.json_name)
                return
            if count > child.max:
                self.issue(run, "error", "structure", base, "max", name=child.json_name, max=child.max, count=count)
            elif count < child.min:
                self.issue(run, "error", "required", base, "min", name=child.json_name, min=child.min, count=count)
            if ne:
                for i in range(count):
                    self.item(run, child, plan, v[i] if i < n else None, ext[i] if i < ne else None, f"{base}[{i}]")
            else:
                for i, x in enumerate(v):
                    self.item(run, child, plan, x, None, f"{base}[{i}]")
        else:
            if type(v) is list or type(ext) is list:
                self.issue(run, "error", "structure", base, "array-unexpected", name=child.json_name)
                return
            self.item(run, child, plan, v, ext, base)

    def item(self, run: Run, node: ElementDef, plan: ItemPlan, v: Any, ext: Any, path: str) -> None:
        if plan.kind == P:
            if v is None:
                if ext is None:
                    self.issue(run, "error", "structure", path, "null-value", name=node.json_name)
                    return
            else:
                err = plan.check(v)
                if err is not None:
                    self.issue(run, "error", "value" if err != "json-type" else "structure", path, err,
                               value=show(v), type=plan.code, json=json_type_name(plan.code))
                elif plan.binding is not None:
                    self.bind(run, plan.binding, plan.code, v, path)
            if ext is not None:
                if type(ext) is not dict:
                    self.issue(run, "error", "structure", path, "not-object", name="_" + node.json_name, type="Element")
                    return
                self.complex(run, self._element_plan, ext, path)
                if not ext or (v is None and not ext.get("extension")):  # "_birthDate": {} says nothing
                    self.issue(run, "error", "invariant", path, "ele-1")
            for inv in plan.invariants:
                self.invariant(run, inv, v if v is not None else ext, plan.fp_type, path)
            return
        if type(v) is not dict:
            self.issue(run, "error", "structure", path, "not-object", name=node.json_name, type=plan.code)
            return
        if plan.kind == R:
            self.resource(run, v, path, contained=node.name == "contained", top=False)
            return
        self.complex(run, plan, v, path)
        for k in v:
            if k != "id":
                break
        else:
            self.issue(run, "error", "invariant", path, "ele-1")
        for inv in plan.invariants:
            self.invariant(run, inv, v, plan.fp_type, path)
        if plan.binding is not None:
            self.bind(run, plan.binding, plan.code, v, path)
        special = plan.special
        if special == REFERENCE:
            if plan.targets is not None:
                self.reference(run, plan.targets, v, path)
            else:
                self.reference(run, None, v, path)
        elif special == IDENTIFIER:
            self.identifier(run, v, path)
        elif special == EXTENSION:
            st = self.registry.extension(v.get("url"))
            if st is not None:
                self.conform(run, st, v, path)
        if plan.profiles:
            self.type_profiles(run, plan.profiles, v, plan.code, path)

    # -- shared checks -------------------------------------------------------------------------
    def invariant(self, run: Run, inv, focus: Any, fp_type: str, path: str) -> None:
        fn = inv.evaluate
        if fn is None:
            return
        try:
            ok = fn(focus, fp_type, run.resource, run.root)
        except Exception as exc:     # fhirpathpy gaps: record once, never fail the validation
            reason = f"evaluation failed: {type(exc).__name__}: {str(exc)[:100]}"
            if str(exc).startswith("Not implemented"):
                self.registry.compiler.skip(inv, reason)
            else:
                self.registry.compiler.skipped.setdefault(f"{inv.key}: {inv.expression}", reason)
            return
        if not ok:
            severity = "error" if inv.severity == "error" else "warning"
            self.issue(run, severity, "invariant", path, "invariant", key=inv.key, human=inv.human)

    def bind(self, run: Run, binding: tuple, code: str, v: Any, path: str) -> None:
        term = self.terminology
        strength, vs = binding
        if term is None or not vs or strength not in ENFORCED:
            return
        memo = run.codes
        if type(v) is str and memo.get((vs, None, v)) is True:
            return                        # a code already found in this value set in this run
        raw_vs, vs = vs, vs.split("|", 1)[0]
        if code in CODED:
            if code == "CodeableReference":
                v = v.get("concept")
                if not isinstance(v, dict):
                    return
                code = "CodeableConcept"
            if code == "CodeableConcept":
                codings = v.get("coding")  # a malformed coding is reported by the walk itself
                pairs = [(_text(c.get("system")), c["code"]) for c in (codings if isinstance(codings, list) else ())
                         if isinstance(c, dict) and isinstance(c.get("code"), str)]
            elif isinstance(v.get("code"), str):
                pairs = [(_text(v.get("system")), v["code"])]
            else:
                pairs = []
            if not pairs:
                return
        elif isinstance(v, str):
            pairs = [(None, v)]
        else:
            return
        for system, c in pairs:
            key = (raw_vs, system, c)
            verdict = memo.get(key, NOTHING)
            if verdict is NOTHING:
                verdict = memo[key] = term.validate_code(vs, system, c)
            if verdict is None:
                self.warn_once(run, "valueset-unknown", vs, path, valueset=vs)
                return
            if verdict:
                return
        shown = ", ".join(f"{s}|{c}" if s else c for s, c in pairs)
        if strength == "required":
            self.issue(run, "error", "code-invalid", path, "binding-required", code=shown, valueset=vs)
        else:
            self.issue(run, "warning", "code-invalid", path, "binding-extensible", code=shown, valueset=vs)

    def reference(self, run: Run, targets: frozenset[str] | None, v: dict, path: str) -> None:
        ref = v.get("reference")
        rtype = None
        if isinstance(ref, str):
            if ref.startswith("#"):
                if len(ref) > 1:
                    for c in run.root.get("contained") or ():
                        if isinstance(c, dict) and c.get("id") == ref[1:]:
                            rtype = c.get("resourceType")
                            break
            elif not ref.startswith("urn:"):
                rtype = self.reference_type(ref)
        declared = v.get("type")
        if isinstance(declared, str):
            dtype = declared.rsplit("/", 1)[-1]
            if rtype is not None and dtype != rtype:
                self.issue(run, "error", "structure", f"{path}.type", "reference-type-mismatch",
                           declared=declared, reference=ref)
            elif rtype is None and dtype in self.registry.resource_types:
                rtype = dtype
        if targets is not None and rtype is not None and rtype not in targets:
            where = f"{path}.reference" if isinstance(ref, str) else path
            self.issue(run, "error", "structure", where, "reference-target", type=rtype,
                       allowed=", ".join(sorted(targets)))

    def reference_type(self, ref: str) -> str | None:
        ref = ref.split("?", 1)[0].split("#", 1)[0]
        segs = ref.split("/")
        if "_history" in segs:
            i = segs.index("_history")
            segs = segs[:i]
        if len(segs) < 2:
            return None
        t = segs[-2]
        return t if t in self.registry.resource_types else None

    def identifier(self, run: Run, v: dict, path: str) -> None:
        formats = self.identifiers
        system = v.get("system")
        if formats is None or not run.identifier_formats or not isinstance(system, str):
            return
        problem = formats.check(system, v.get("value"))
        if problem:
            self.issue(run, "error", "value", f"{path}.value", "identifier-format", system=system, detail=problem)

    def type_profiles(self, run: Run, profiles: tuple[str, ...], v: Any, code: str, path: str) -> None:
        if code == "Extension" and isinstance(v, dict) and v.get("url") in profiles:
            return                       # already checked against its definition in full mode
        cached = self._profiles.get(profiles)
        if cached is None or cached[0] != self.registry.generation:
            resolved = [(url, self.registry.get(url)) for url in profiles]
            cached = self._profiles[profiles] = (
                self.registry.generation,
                [st for _, st in resolved if st is not None and st.is_profile],
                [url for url, st in resolved if st is None])
        _, known, unknown = cached
        for url in unknown:
            self.warn_once(run, "profile-unknown", url, path, profile=url)
        if len(known) == 1:
            self.conform(run, known[0], v, path)
        elif known and not any(self.conforms(run, st, v) for st in known):
            self.issue(run, "error", "structure", path, "profile-conformance",
                       profiles=", ".join(st.url for st in known))

    def conforms(self, run: Run, st: Structure, v: Any) -> bool:
        sub = Run(run.lang, run.identifier_formats)
        sub.resource, sub.root, sub.warned, sub.depth = run.resource, run.root, run.warned, run.depth
        sub.codes = run.codes
        self.conform(sub, st, v, st.type)
        return not any(i.severity in ("error", "fatal") for i in sub.issues)


def _text(value: Any) -> str | None:
    """A string of the instance, or None when it is not one (the walk reports that)."""
    return value if isinstance(value, str) else None


__all__ = ["Walker", "Run", "ItemPlan", "KeySpec", "Unsupported"]
