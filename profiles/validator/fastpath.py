"""A fast evaluator for the everyday subset of FHIRPath used in invariants.

fhirpathpy interprets its syntax tree on every call (~200 µs for a one-line profile
invariant such as ``identifier.value.matches('^[A-Z0-9-]{6,32}$')``), which alone would
blow the care-sheet budget.  This module turns the *same* syntax tree (fhirpathpy's parser)
into nested Python closures, once, for expressions built only from: navigation, literals,
``%resource``/``%rootResource``/``%ucum``, ``$this``, indexers, ``= != < <= > >= in contains
| & +``, ``and or xor implies`` and the functions in ``FUNCTIONS``.

It never guesses: anything else is refused at compile time (``Unsupported``: fhirpathpy
evaluates the expression), and any value whose meaning it cannot be sure of at run time --
date/time comparisons (precision rules), primitive extensions (``_x``), non-boolean logic
operands, type filters -- raises ``Fallback`` so that fhirpathpy evaluates that call.
The tests compare both engines on every base invariant over the official examples.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from fhirpathpy.parser import parse

Coll = list
Fn = Callable[[Coll, "Env"], Coll]


class Unsupported(Exception):
    """Compile time: the expression uses something outside the subset."""


class Fallback(Exception):
    """Run time: this value needs fhirpathpy's full semantics."""


class Env:
    __slots__ = ("resource", "root", "focus")

    def __init__(self, resource: Any, root: Any, focus: Coll):
        self.resource, self.root, self.focus = resource, root, focus


CONSTANTS = {"ucum": "http://unitsofmeasure.org", "sct": "http://snomed.info/sct", "loinc": "http://loinc.org"}
LAMBDAS = frozenset({"exists", "where", "all", "select"})
# strings that may be dates or times: FHIRPath compares those with precision rules
_TEMPORAL = re.compile(r"@?\d{4}(-\d{2}(-\d{2})?)?(T[\d:.+\-Z]*)?|@?T?\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def _is_number(x: Any) -> bool:
    return (type(x) is int or type(x) is float)


def _eq(a: Any, b: Any) -> bool:
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        if a == b:
            return True
        if _TEMPORAL.fullmatch(a) or _TEMPORAL.fullmatch(b):
            raise Fallback
        return False
    if _is_number(a) and _is_number(b):
        return a == b
    if ta is bool and tb is bool:
        return a is b
    if ta is dict and tb is dict:
        return a == b
    raise Fallback


def _boolean(coll: Coll) -> bool | None:
    if not coll:
        return None
    if len(coll) == 1 and type(coll[0]) is bool:
        return coll[0]
    raise Fallback


def _string(coll: Coll) -> str | None:
    if not coll:
        return None
    if len(coll) == 1 and type(coll[0]) is str:
        return coll[0]
    raise Fallback


class Compiler:
    def __init__(self, choice_names: frozenset[str], type_suffixes: frozenset[str]):
        self.choice_names = choice_names
        self.type_suffixes = type_suffixes

    # -- entry ---------------------------------------------------------------------------------
    def compile(self, expression: str) -> Callable[[Any, Any, Any], bool]:
        tree = parse(expression)
        fn = self.expr(tree["children"][0])

        def evaluate(focus: Any, resource: Any, root: Any) -> bool:
            coll = [focus]
            result = fn(coll, Env(resource, root, coll))
            return not (len(result) == 1 and result[0] is False)

        return evaluate

    # -- expressions ---------------------------------------------------------------------------
    def expr(self, node: dict) -> Fn:
        kind = node.get("type")
        handler = getattr(self, "_" + kind, None) if kind else None
        if handler is None:
            raise Unsupported(kind)
        return handler(node)

    def _TermExpression(self, node: dict) -> Fn:  # noqa: N802
        term = node["children"][0]
        ttype = term["type"]
        if ttype == "InvocationTerm":
            inv = term["children"][0]
            itype = inv["type"]
            if itype == "ThisInvocation":
                return lambda coll, env: coll
            if itype in ("MemberInvocation", "FunctionInvocation"):
                apply = self.invocation(inv)
                return lambda coll, env: apply(coll, coll, env)
            raise Unsupported(itype)
        if ttype == "LiteralTerm":
            value = self.literal(term["children"][0])
            return lambda coll, env: value
        if ttype == "ExternalConstantTerm":
            name = term["children"][0]["children"][0]["text"]
            if name == "resource":
                return lambda coll, env: [env.resource]
            if name == "rootResource":
                return lambda coll, env: [env.root]
            if name == "context":
                return lambda coll, env: env.focus
            if name in CONSTANTS:
                const = [CONSTANTS[name]]
                return lambda coll, env: const
            raise Unsupported("%" + name)
        if ttype == "ParenthesizedTerm":
            return self.expr(term["children"][0])
        raise Unsupported(ttype)

    def literal(self, lit: dict) -> Coll:
        ltype, text = lit["type"], lit.get("text", "")
        if ltype == "NullLiteral":
            return []
        if ltype == "BooleanLiteral":
            return [text == "true"]
        if ltype == "StringLiteral":
            return [_unescape(text[1:-1])]
        if ltype == "NumberLiteral":
            return [float(text) if "." in text else int(text)]
        raise Unsupported(ltype)

    def _InvocationExpression(self, node: dict) -> Fn:  # noqa: N802
        left = self.expr(node["children"][0])
        apply = self.invocation(node["children"][1])
        return lambda coll, env: apply(left(coll, env), coll, env)

    def _IndexerExpression(self, node: dict) -> Fn:  # noqa: N802
        left, index = self.expr(node["children"][0]), self.expr(node["children"][1])

        def fn(coll: Coll, env: Env) -> Coll:
            items, i = left(coll, env), index(coll, env)
            if len(i) != 1 or type(i[0]) is not int:
                raise Fallback
            return [items[i[0]]] if 0 <= i[0] < len(items) else []
        return fn

    def _PolarityExpression(self, node: dict) -> Fn:  # noqa: N802
        inner = self.expr(node["children"][0])
        sign = -1 if node["terminalNodeText"][0] == "-" else 1

        def fn(coll: Coll, env: Env) -> Coll:
            v = inner(coll, env)
            if not v:
                return []
            if len(v) != 1 or not _is_number(v[0]):
                raise Fallback
            return [sign * v[0]]
        return fn

    def _binary(self, node: dict) -> tuple[Fn, Fn, str]:
        a, b = (self.expr(c) for c in node["children"])
        return a, b, node["terminalNodeText"][0]

    def _EqualityExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, op = self._binary(node)
        if op not in ("=", "!="):
            raise Unsupported(op)          # ~ and !~ (equivalence)
        negate = op == "!="

        def fn(coll: Coll, env: Env) -> Coll:
            x, y = a(coll, env), b(coll, env)
            if not x or not y:
                return []
            if len(x) != len(y):
                return [negate]
            same = all(_eq(p, q) for p, q in zip(x, y))
            return [same is not negate]
        return fn

    def _InequalityExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, op = self._binary(node)
        compare = {"<": lambda p, q: p < q, "<=": lambda p, q: p <= q,
                   ">": lambda p, q: p > q, ">=": lambda p, q: p >= q}[op]

        def fn(coll: Coll, env: Env) -> Coll:
            x, y = a(coll, env), b(coll, env)
            if not x or not y:
                return []
            if len(x) != 1 or len(y) != 1:
                raise Fallback
            p, q = x[0], y[0]
            if _is_number(p) and _is_number(q):
                return [compare(p, q)]
            if type(p) is str and type(q) is str and not _TEMPORAL.fullmatch(p) and not _TEMPORAL.fullmatch(q):
                return [compare(p, q)]
            raise Fallback
        return fn

    def _MembershipExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, op = self._binary(node)
        if op == "contains":
            a, b = b, a

        def fn(coll: Coll, env: Env) -> Coll:
            x = a(coll, env)
            if not x:
                return []
            if len(x) != 1:
                raise Fallback
            return [any(_eq(x[0], y) for y in b(coll, env))]
        return fn

    def _UnionExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, _ = self._binary(node)
        return lambda coll, env: _distinct(a(coll, env) + b(coll, env))

    def _AdditiveExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, op = self._binary(node)
        if op == "&":
            def concat(coll: Coll, env: Env) -> Coll:
                return [(_string(a(coll, env)) or "") + (_string(b(coll, env)) or "")]
            return concat
        if op != "+":
            raise Unsupported(op)

        def add(coll: Coll, env: Env) -> Coll:
            x, y = a(coll, env), b(coll, env)
            if not x or not y:
                return []
            if len(x) != 1 or len(y) != 1:
                raise Fallback
            p, q = x[0], y[0]
            if (type(p) is str and type(q) is str) or (_is_number(p) and _is_number(q)):
                return [p + q]
            raise Fallback
        return add

    def _AndExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, _ = self._binary(node)

        def fn(coll: Coll, env: Env) -> Coll:
            x = _boolean(a(coll, env))
            if x is False:
                return [False]
            y = _boolean(b(coll, env))
            if y is False:
                return [False]
            return [True] if x and y else []
        return fn

    def _OrExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, op = self._binary(node)
        if op == "xor":
            def xor(coll: Coll, env: Env) -> Coll:
                x, y = _boolean(a(coll, env)), _boolean(b(coll, env))
                return [] if x is None or y is None else [x is not y]
            return xor

        def fn(coll: Coll, env: Env) -> Coll:
            x = _boolean(a(coll, env))
            if x is True:
                return [True]
            y = _boolean(b(coll, env))
            if y is True:
                return [True]
            return [False] if x is False and y is False else []
        return fn

    def _ImpliesExpression(self, node: dict) -> Fn:  # noqa: N802
        a, b, _ = self._binary(node)

        def fn(coll: Coll, env: Env) -> Coll:
            x = _boolean(a(coll, env))
            if x is False:
                return [True]
            y = _boolean(b(coll, env))
            if y is True:
                return [True]
            if x is True and y is False:
                return [False]
            return []
        return fn

    # -- invocations ---------------------------------------------------------------------------
    def invocation(self, inv: dict) -> Callable[[Coll, Coll, Env], Coll]:
        """(input, context, env) -> output, for ``.name`` or ``.fn(args)``."""
        if inv["type"] == "MemberInvocation":
            name = inv["children"][0]["text"]
            if not name or name.startswith("`"):
                name = name.strip("`")
            return self.member(name)
        if inv["type"] != "FunctionInvocation":
            raise Unsupported(inv["type"])
        functn = inv["children"][0]
        fname = functn["children"][0]["text"]
        params = functn["children"][1]["children"] if len(functn["children"]) > 1 else []
        factory = FUNCTIONS.get(fname)
        if factory is None:
            raise Unsupported(fname)
        args = [self.expr(p) for p in params]
        return factory(*args)

    def member(self, name: str) -> Callable[[Coll, Coll, Env], Coll]:
        choice = name in self.choice_names
        suffixes = self.type_suffixes
        ext_key = "_" + name
        type_name = name[:1].isupper()

        def nav(items: Coll, context: Coll, env: Env) -> Coll:
            out: Coll = []
            for item in items:
                if type(item) is not dict:
                    continue
                if type_name:
                    if item.get("resourceType") == name:
                        out.append(item)
                        continue
                    raise Fallback
                if ext_key in item:
                    raise Fallback             # primitive extensions: fhirpathpy's business
                v = item.get(name)
                if v is None and choice:
                    n = len(name)
                    for k, val in item.items():
                        bare = k[1:] if k[:1] == "_" else k
                        if len(bare) > n and bare.startswith(name) and bare[n].isupper():
                            if bare is not k or bare[n:] not in suffixes or "_" + k in item:
                                raise Fallback
                            v = val
                            break
                if v is None:
                    continue
                if type(v) is list:
                    if None in v:
                        raise Fallback
                    out.extend(v)
                else:
                    out.append(v)
            return out
        return nav


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", lambda m: chr(int(m[1][1:], 16)) if m[1][0] == "u" and len(m[1]) == 5
                  else {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}.get(m[1], m[1]), text)


def _distinct(items: Coll) -> Coll:
    out: Coll = []
    for x in items:
        if not any(_eq(x, y) for y in out):
            out.append(x)
    return out


def _lambda(fn: Fn, item: Any, env: Env) -> bool | None:
    return _boolean(fn([item], env))


def _no_args(*args: Fn) -> None:
    if args:
        raise Unsupported("arguments")


# Each factory takes the compiled argument expressions and returns (input, context, env) -> output.
def _exists(*args: Fn):
    if not args:
        return lambda items, ctx, env: [bool(items)]
    crit, = args
    return lambda items, ctx, env: [any(_lambda(crit, x, env) for x in items)]


def _where(crit: Fn):
    return lambda items, ctx, env: [x for x in items if _lambda(crit, x, env)]


def _all(crit: Fn):
    return lambda items, ctx, env: [all(_lambda(crit, x, env) for x in items)]


def _select(proj: Fn):
    def fn(items: Coll, ctx: Coll, env: Env) -> Coll:
        out: Coll = []
        for x in items:
            out.extend(proj([x], env))
        return out
    return fn


def _simple(op: Callable[[Coll], Coll]):
    def factory(*args: Fn):
        _no_args(*args)
        return lambda items, ctx, env: op(items)
    return factory


def _not(items: Coll) -> Coll:
    b = _boolean(items)
    return [] if b is None else [not b]


def _has_value(items: Coll) -> Coll:
    return [len(items) == 1 and type(items[0]) is not dict]


def _string_fn(op: Callable[..., Any], arity: int):
    def factory(*args: Fn):
        if len(args) != arity:
            raise Unsupported("arity")

        def fn(items: Coll, ctx: Coll, env: Env) -> Coll:
            s = _string(items)
            if s is None:
                return []
            values = []
            for a in args:
                v = a(ctx, env)
                if not v:
                    return []
                if len(v) != 1:
                    raise Fallback
                values.append(v[0])
            return [op(s, *values)]
        return fn
    return factory


def _matches(s: str, regex: Any) -> bool:
    if type(regex) is not str:
        raise Fallback
    return re.search(regex, s, re.DOTALL) is not None


def _starts(s: str, prefix: Any) -> bool:
    if type(prefix) is not str:
        raise Fallback
    return s.startswith(prefix)


def _ends(s: str, suffix: Any) -> bool:
    if type(suffix) is not str:
        raise Fallback
    return s.endswith(suffix)


def _contains(s: str, sub: Any) -> bool:
    if type(sub) is not str:
        raise Fallback
    return sub in s


def _iif(cond: Fn, yes: Fn, no: Fn | None = None):
    # as fhirpathpy's macro: the arguments are evaluated on the input collection
    def fn(items: Coll, ctx: Coll, env: Env) -> Coll:
        c = _boolean(cond(items, env))
        if c:
            return yes(items, env)
        return no(items, env) if no is not None else []
    return fn


def _trace(*args: Fn):
    return lambda items, ctx, env: items


def _union(other: Fn):
    return lambda items, ctx, env: _distinct(items + other(ctx, env))


def _combine(other: Fn):
    return lambda items, ctx, env: items + other(ctx, env)


def _single(items: Coll) -> Coll:
    if len(items) > 1:
        raise Fallback
    return items


def _is_distinct(items: Coll) -> Coll:
    return [len(_distinct(items)) == len(items)]


FUNCTIONS: dict[str, Callable[..., Callable[[Coll, Coll, Env], Coll]]] = {
    "exists": _exists,
    "where": _where,
    "all": _all,
    "select": _select,
    "empty": _simple(lambda items: [not items]),
    "not": _simple(_not),
    "count": _simple(lambda items: [len(items)]),
    "first": _simple(lambda items: items[:1]),
    "last": _simple(lambda items: items[-1:]),
    "tail": _simple(lambda items: items[1:]),
    "single": _simple(_single),
    "distinct": _simple(_distinct),
    "isDistinct": _simple(_is_distinct),
    "hasValue": _simple(_has_value),
    "length": _simple(lambda items: [] if _string(items) is None else [len(_string(items))]),
    "upper": _simple(lambda items: [] if _string(items) is None else [_string(items).upper()]),
    "lower": _simple(lambda items: [] if _string(items) is None else [_string(items).lower()]),
    "matches": _string_fn(_matches, 1),
    "startsWith": _string_fn(_starts, 1),
    "endsWith": _string_fn(_ends, 1),
    "contains": _string_fn(_contains, 1),
    "iif": _iif,
    "trace": _trace,
    "union": _union,
    "combine": _combine,
}
