"""Delta mode: checking a value against what a profile adds to the base specification.

Only the profile's hot subtrees are visited (see ``registry``): narrowed cardinality and
types, fixed/pattern values, new bindings and invariants, narrowed reference targets, type
profiles and slicing (discriminators ``value``, ``pattern``, ``exists``, ``type``,
``profile``; open, closed and openAtEnd rules; ordered slices).  Mixed into ``Walker``,
whose full-mode checks (bindings, references, invariants...) it reuses.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .model import NOTHING, ElementDef, Slicing, Structure
from .registry import split_path
from .values import cap, children_named, equals_fixed, matches_pattern, show

if TYPE_CHECKING:
    from .walker import Run, Walker


MAX_DEPTH = 64        # nested resources / profiles (Bundle in Bundle...) beyond this are not walked


class Unsupported(Exception):
    """A discriminator the engine cannot evaluate (e.g. ``resolve()``)."""


class HotChild:
    """A child element a profile constrains, as the delta walk needs it."""

    __slots__ = ("node", "simple", "key", "ext_key", "code", "prim", "suffix", "label", "name",
                 "card", "min", "max", "per_item")


class DeltaPlan:
    """What a profile adds on one element: per-value checks, and the constrained children."""

    __slots__ = ("checks", "hot")

    def __init__(self, walker: "Walker", node: ElementDef):
        self.checks = bool(node.fixed is not NOTHING or node.pattern is not NOTHING or node.d_binding is not None
                           or node.d_targets is not None or node.d_profiles or node.d_invariants)
        hot = node.hot_children
        if not hot and isinstance(node.content_ref, ElementDef):
            hot = node.content_ref.hot_children
        children = []
        for child in hot:
            h = HotChild()
            spec = child.plans.get("_keys") or walker.keys_of(child)
            h.node, h.name, h.label = child, child.json_name, "." + child.json_name
            h.key, h.code, h.prim, h.suffix = spec[0]
            h.ext_key = "_" + h.key
            h.simple = (len(spec) == 1 and not child.is_array and not child.slices and not child.type_variants
                        and child.d_types is None)
            h.card, h.min, h.max = child.d_card, child.min, child.max
            h.per_item = walker.item_level(child)
            children.append(h)
        self.hot = tuple(children)


class ProfileChecks:
    # -- delta mode (profiles) -------------------------------------------------------------------
    def conform(self, run: Run, st: Structure, value: Any, path: str) -> None:
        """Check ``value`` (of type ``st.type``) against what profile ``st`` adds."""
        root = st.root
        if root is None or not root.hot:
            return
        wake = root.plans.get("_wake", NOTHING)
        if wake is NOTHING:
            wake = root.plans["_wake"] = self.wake_keys(root)
        if wake is not None and type(value) is dict:
            for key in wake:
                if key in value:
                    break
            else:
                return                    # none of what the profile constrains is there
        if run.depth >= MAX_DEPTH:
            return
        run.depth += 1
        try:
            self.delta_item(run, st.root, st.type, value, None, path)
        finally:
            run.depth -= 1

    def wake_keys(self, root: ElementDef) -> frozenset[str] | None:
        """The JSON keys without which a profile has nothing to say about a value, when that
        can be known (SimpleQuantity: only ``comparator``); None otherwise."""
        if root.fixed is not NOTHING or root.pattern is not NOTHING or root.d_binding is not None \
                or root.d_targets is not None or root.d_profiles or root.content_ref is not None:
            return None
        keys: set[str] = set()
        for inv in root.d_invariants:
            names = getattr(inv.evaluate, "names", None)
            if not names:
                return None               # native, unguarded or choice-dependent
            keys.update(names)
            keys.update("_" + n for n in names)
        for child in root.hot_children:
            if child.is_choice or child.min > 0 or any(s.min > 0 for s in child.slices) \
                    or any(t.min > 0 for t in child.type_variants.values()):
                return None               # its absence is itself a finding
            keys.update((child.name, "_" + child.name))
        return frozenset(keys)

    def delta_plan(self, node: ElementDef) -> "DeltaPlan":
        plan = node.plans.get("_delta")
        if plan is None:
            plan = node.plans["_delta"] = DeltaPlan(self, node)
        return plan

    def delta_item(self, run: Run, node: ElementDef, code: str, v: Any, ext: Any, path: str) -> None:
        plan = node.plans.get("_delta") or self.delta_plan(node)
        if plan.checks:
            if node.fixed is not NOTHING and not equals_fixed(v, node.fixed):
                self.issue(run, "error", "value", path, "fixed", expected=show(node.fixed))
            if node.pattern is not NOTHING and not matches_pattern(v, node.pattern):
                self.issue(run, "error", "value", path, "pattern", expected=show(node.pattern))
            if v is not None:
                if node.d_binding is not None:
                    self.bind(run, node.d_binding, code, v, path)
                if node.d_targets is not None and code == "Reference" and type(v) is dict:
                    targets = node.plans.get("_targets", NOTHING)
                    if targets is NOTHING:
                        targets = node.plans["_targets"] = self.registry.resolve_target_types(node.d_targets)
                    self.reference(run, targets, v, path)
                profiles = node.d_profiles.get(code) if node.d_profiles else None
                if profiles:
                    self.type_profiles(run, profiles, v, code, path)
            if node.d_invariants:
                fp_type = self.fp_type(node, code)
                focus = v if v is not None else ext
                for inv in node.d_invariants:
                    self.invariant(run, inv, focus, fp_type, path)
        if plan.hot:
            holder = v if type(v) is dict else ext if type(ext) is dict else None
            if holder is not None:
                self.delta_children(run, plan.hot, holder, path)

    def delta_children(self, run: Run, hot: tuple["HotChild", ...], value: dict, path: str) -> None:
        for h in hot:
            if h.simple:
                # the common case (one key, one value at most), without listing occurrences
                v = value.get(h.key)
                e = value.get(h.ext_key) if h.prim else None
                if type(v) is not list and type(e) is not list:
                    present = v is not None or e is not None
                    if h.card:
                        n = 1 if present else 0
                        if n < h.min:
                            self.issue(run, "error", "required", path + h.label, "min",
                                       name=h.name, min=h.min, count=n)
                        elif n > h.max:
                            self.issue(run, "error", "structure", path + h.label, "max",
                                       name=h.name, max=h.max, count=n)
                    if present and h.per_item:
                        code = h.code
                        if code == "Resource" and type(v) is dict:
                            code = v.get("resourceType") or code     # a resource's type is its own
                        self.delta_item(run, h.node, code, v, e, path + h.suffix)
                    continue
            child = h.node
            items = self.collect(child, value, path)
            if h.card:
                n = len(items)
                if n < child.min:
                    self.issue(run, "error", "required", path + h.label, "min",
                               name=h.name, min=child.min, count=n)
                elif n > child.max:
                    self.issue(run, "error", "structure", path + h.label, "max",
                               name=h.name, max=child.max, count=n)
            variants = child.type_variants
            if child.d_types is not None or variants:
                self.check_types(run, child, items, path)
            if child.slices:
                self.slices(run, child, items, path)
                continue
            if not variants and not h.per_item:
                continue                  # only its cardinality changed: nothing per item
            for v, e, code, p in items:
                self.delta_item(run, child, code, v, e, p)
                variant = variants.get(code) if variants else None
                if variant is not None:
                    self.delta_item(run, variant, code, v, e, p)

    @staticmethod
    def item_level(node: ElementDef) -> bool:
        """Does the profile add anything to check on each value of this element?"""
        flag = node.plans.get("_item")
        if flag is None:
            flag = node.plans["_item"] = bool(
                node.fixed is not NOTHING or node.pattern is not NOTHING or node.d_binding is not None
                or node.d_targets is not None or node.d_profiles or node.d_invariants or node.hot_children
                or isinstance(node.content_ref, ElementDef))
        return flag

    def check_types(self, run: Run, child: ElementDef, items: list, path: str) -> None:
        allowed = child.d_types
        variants = child.type_variants
        for v, e, code, p in items:
            variant = variants.get(code)
            if (allowed is not None and code not in allowed) or (variant is not None and variant.max == 0):
                shown = sorted(c for c in (allowed or child.type_codes())
                               if not (c in variants and variants[c].max == 0))
                self.issue(run, "error", "structure", p, "type-not-allowed", type=code, allowed=", ".join(shown))
        for code, variant in variants.items():
            if variant.min > 0 and not any(item[2] == code for item in items):
                name = child.json_name + cap(code)
                self.issue(run, "error", "required", f"{path}.{child.json_name}", "min",
                           name=name, min=variant.min, count=0)

    def keys_of(self, child: ElementDef) -> list[tuple[str, str, bool, str]]:
        """(JSON key, type, is primitive, path suffix) of each way ``child`` can appear."""
        types = child.base.types or child.types
        if child.is_choice:
            spec = [(child.json_name + cap(t.code), t.code, self.registry.is_primitive(t.code),
                     f".{child.json_name}.ofType({t.code})") for t in types]
        else:
            code = types[0].code if types else "BackboneElement"
            spec = [(child.name, code, self.registry.is_primitive(code), f".{child.name}")]
        child.plans["_keys"] = spec
        return spec

    def collect(self, child: ElementDef, value: dict, path: str) -> list[tuple[Any, Any, str, str]]:
        """The occurrences of ``child`` in ``value``: (value, _extension, type, path)."""
        spec = child.plans.get("_keys") or self.keys_of(child)
        items = []
        array = child.is_array
        for key, code, prim, suffix in spec:
            v = value.get(key)
            e = value.get("_" + key) if prim else None
            if v is None and e is None:
                continue
            if code == "Resource":           # a resource's type is its own
                items.extend(((x, None, (x.get("resourceType") if type(x) is dict else None) or code,
                               f"{path}{suffix}[{i}]" if array else path + suffix)
                              for i, x in enumerate(v if type(v) is list else [v])))
                continue
            if array:
                base = path + suffix
                if e is None and type(v) is list:
                    items.extend((x, None, code, f"{base}[{i}]") for i, x in enumerate(v))
                    continue
                vs = v if type(v) is list else ([] if v is None else [v])
                es = e if type(e) is list else ([] if e is None else [e])
                for i in range(max(len(vs), len(es))):
                    items.append((vs[i] if i < len(vs) else None, es[i] if i < len(es) else None, code,
                                  f"{base}[{i}]"))
            else:
                items.append((v, e, code, path + suffix))
        return items

    # -- slicing -------------------------------------------------------------------------------
    def slices(self, run: Run, sliced: ElementDef, items: list, path: str) -> None:
        slicing: Slicing = sliced.slicing
        name = f"{path}.{sliced.json_name}"
        try:
            assigned = [self.match(run, sliced, slicing, item) for item in items]
        except Unsupported as exc:
            self.warn_once(run, "slicing-unsupported", sliced.id, name, name=sliced.id, path=str(exc))
            for v, e, code, p in items:
                self.delta_item(run, sliced, code, v, e, p)
            return
        for idx, s in enumerate(sliced.slices):
            count = assigned.count(idx)
            if count < s.min:
                self.issue(run, "error", "required", name, "slice-min", name=sliced.json_name,
                           slice=s.slice_name, min=s.min, count=count)
            elif count > s.max:
                self.issue(run, "error", "structure", name, "slice-max", name=sliced.json_name,
                           slice=s.slice_name, max=s.max, count=count)
        last, seen_unmatched = -1, False
        for (v, e, code, p), a in zip(items, assigned):
            if a < 0:
                seen_unmatched = True
                if slicing.rules == "closed":
                    self.issue(run, "error", "structure", p, "slice-closed", name=sliced.json_name)
            else:
                if (slicing.ordered and a < last) or (slicing.rules == "openAtEnd" and seen_unmatched):
                    self.issue(run, "error", "structure", p, "slice-order", name=sliced.json_name,
                               slice=sliced.slices[a].slice_name)
                last = max(last, a)
            self.delta_item(run, sliced, code, v, e, p)
            if a >= 0:
                self.delta_item(run, sliced.slices[a], code, v, e, p)

    def match(self, run: Run, sliced: ElementDef, slicing: Slicing, item: tuple) -> int:
        v, _, code, _ = item
        for idx, s in enumerate(sliced.slices):
            for dtype, dpath in slicing.discriminators:
                if not self.discriminates(run, s, dtype, dpath, v, code):
                    break
            else:
                return idx
        return -1

    def discriminates(self, run: Run, s: ElementDef, dtype: str, dpath: str, v: Any, code: str) -> bool:
        steps, target = self.discriminator(s, dpath)
        values = self.values_at(v, code, steps)
        if dtype in ("value", "pattern"):
            if target.fixed is not NOTHING:
                return any(equals_fixed(x, target.fixed) for x, _ in values)
            if target.pattern is not NOTHING:
                return any(matches_pattern(x, target.pattern) for x, _ in values)
            if target.binding and target.binding[0] == "required" and self.terminology is not None:
                vs = (target.binding[1] or "").split("|", 1)[0]
                for x, _ in values:
                    if isinstance(x, str) and self.terminology.validate_code(vs, None, x):
                        return True
                    if isinstance(x, dict) and isinstance(x.get("code"), str) and \
                            self.terminology.validate_code(vs, x.get("system"), x["code"]):
                        return True
                return False
            raise Unsupported(dpath)
        if dtype == "exists":
            if target.min >= 1:
                return bool(values)
            if target.max == 0:
                return not values
            raise Unsupported(dpath)
        if dtype == "type":
            codes = target.type_codes()
            return any(c in codes for _, c in values)
        if dtype == "profile":
            for x, c in values:
                for t in target.types:
                    for url in t.profiles:
                        st = self.registry.get(url)
                        if st is None:
                            continue
                        if st.is_profile and self.conforms(run, st, x):
                            return True
                        if not st.is_profile and st.type == c:
                            return True
            return False
        raise Unsupported(f"{dtype}:{dpath}")

    def discriminator(self, s: ElementDef, dpath: str) -> tuple[list, ElementDef]:
        """Steps to follow in the instance, and the slice's definition at ``dpath`` (cached)."""
        key = "_disc:" + dpath
        cached = s.plans.get(key)
        if cached is not None:
            return cached
        segs = split_path(dpath)
        if segs is None:
            raise Unsupported(dpath)
        steps: list[tuple] = []
        node = s
        for seg in segs:
            if seg == "$this":
                continue
            if seg.startswith("resolve("):
                raise Unsupported(dpath)
            if seg.startswith("ofType("):
                t = seg[7:-1].strip()
                steps.append(("type", t))
                node = node.type_variants.get(t, node)
                continue
            if seg.startswith("extension("):
                url = seg[10:-1].strip().strip("'\"")
                ext = self.def_children(node).get("extension")
                found = None
                for sl in ext.slices if ext is not None else ():
                    if any(url in t.profiles for t in sl.types) or self._fixed_url(sl) == url:
                        found = sl
                        break
                if found is None:
                    raise Unsupported(dpath)
                steps.append(("ext", url))
                node = found
                continue
            if "(" in seg:
                raise Unsupported(dpath)
            kids = self.def_children(node)
            child = kids.get(seg) or kids.get(seg + "[x]")
            if child is None:
                raise Unsupported(dpath)
            if child.is_choice:
                steps.append(("child", child.json_name, tuple(t.code for t in (child.base.types or child.types)), None))
            else:
                # the type the instance's JSON carries: the base one (a slice may narrow it)
                types = child.base.types or child.types
                steps.append(("child", child.name, None, types[0].code if types else None))
            node = child
        s.plans[key] = (steps, node)
        return steps, node

    def _fixed_url(self, ext_slice: ElementDef) -> Any:
        url = self.def_children(ext_slice).get("url")
        return url.fixed if url is not None else None

    def def_children(self, node: ElementDef) -> dict[str, ElementDef]:
        """Children of a definition node, looking into its type profile when it has one."""
        if node.children is not None:
            return node.children
        if isinstance(node.content_ref, ElementDef):
            return self.def_children(node.content_ref)
        for t in node.types:
            for url in t.profiles:
                st = self.registry.get(url)
                if st is not None and st.root is not None and st.root.children is not None:
                    return st.root.children
        return self.registry.children(node, None) or {}

    @staticmethod
    def values_at(v: Any, code: str, steps: list) -> list[tuple[Any, str | None]]:
        current: list[tuple[Any, str | None]] = [(v, code)]
        for step in steps:
            kind = step[0]
            if kind == "type":
                current = [(x, c) for x, c in current
                           if c == step[1] or (isinstance(x, dict) and x.get("resourceType") == step[1])]
            elif kind == "ext":
                current = [(x, "Extension") for cur, _ in current if isinstance(cur, dict)
                           for x in cur.get("extension") or () if isinstance(x, dict) and x.get("url") == step[1]]
            else:
                nxt = []
                for x, _ in current:
                    for found, c in children_named(x, step[1], step[2]):
                        if c is None:
                            c = step[3]
                            if c == "Resource" and isinstance(found, dict):
                                c = found.get("resourceType")
                        nxt.append((found, c))
                current = nxt
        return current
