"""Invariants (FHIRPath constraints): compiled once, evaluated cheaply.

Three speed-ups keep FHIRPath off the hot path without changing results:

* ``ele-1`` is checked natively by the walker (it runs on every element);
* a few invariants that fire on every instance of common data types (``ref-1`` on each
  Reference, ``per-1`` on each Period, ``dom-6`` on each resource, ``txt-1``/``txt-2`` on each narrative, ``dom-3`` which fhirpathpy cannot
  evaluate) have native twins, registered by key *and* exact expression so a changed
  expression falls back to fhirpathpy; the tests check the twins against fhirpathpy on
  the official examples where fhirpathpy can evaluate them;
* an *absence guard*: when the expression only navigates from the focus through a known
  set of child names (no ``%resource``, ``$this``, focus-level function...), and none of
  those children is present, the result is the one computed once on an empty element.
  ``dom-2``..``dom-5`` on a resource without ``contained`` never reach fhirpathpy.

Expressions fhirpathpy cannot parse, or that fail when evaluated (unsupported functions
such as ``resolve()``), are skipped and recorded once in ``InvariantCompiler.skipped``.
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import fhirpathpy
from antlr4 import CommonTokenStream, InputStream
from antlr4.error.ErrorListener import ErrorListener
from fhirpathpy.engine.nodes import ResourceNode
from fhirpathpy.models import models
from fhirpathpy.parser import parse
from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

from .fastpath import Compiler as FastCompiler
from .fastpath import Fallback, Unsupported
from .model import Invariant
from .narrative import html_checks

log = logging.getLogger(__name__)

MODEL = models["r4"]   # fhirpathpy ships R4 type info; R4B differs only in resources it adds


def _has_value(inputs: list) -> bool:
    # FHIR's hasValue(): a single primitive that carries an actual value (not just extensions)
    return len(inputs) == 1 and inputs[0] is not None and not isinstance(inputs[0], (dict, list))


def _html_checks(inputs: list) -> bool:
    if len(inputs) != 1:
        return False
    value = inputs[0]
    if isinstance(value, dict):            # called on a Narrative
        value = value.get("div")
    return html_checks(value) if isinstance(value, str) else False


OPTIONS = {
    "traceFn": lambda *args: None,          # trace() must not print on a server
    "userInvocationTable": {"hasValue": {"fn": _has_value}, "htmlChecks": {"fn": _html_checks}},
}


# -- native twins ------------------------------------------------------------------------
def _ref_1(focus: Any, resource: dict, root: dict) -> bool:
    ref = focus.get("reference") if isinstance(focus, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#"):
        return True
    if ref == "#":
        # the container (inside a contained resource); elsewhere substring(1) is empty, and
        # so is the whole expression: not a failure either
        return True
    target = ref[1:]
    return any(isinstance(c, dict) and c.get("id") == target for c in root.get("contained") or ())


def _dom_6(focus: Any, resource: dict, root: dict) -> bool:
    text = focus.get("text") if isinstance(focus, dict) else None
    return isinstance(text, dict) and ("div" in text or "_div" in text)


def _narrative(focus: Any, resource: dict, root: dict) -> bool:
    # declared on Narrative.div: the focus is the xhtml string
    div = focus.get("div") if isinstance(focus, dict) else focus
    return isinstance(div, str) and html_checks(div)


def _local_refs(value: Any, out: set[str]) -> None:
    # every string starting with '#': Reference.reference, canonical, uri and url values
    # (fhirpathpy rejects dom-3's ``descendants().as(canonical)`` on collections)
    if isinstance(value, str):
        if value[:1] == "#":
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _local_refs(v, out)
    elif isinstance(value, list):
        for v in value:
            _local_refs(v, out)


def _dom_3(focus: Any, resource: dict, root: dict) -> bool:
    contained = focus.get("contained") if isinstance(focus, dict) else None
    if not contained:
        return True
    refs: set[str] = set()
    _local_refs(focus, refs)
    for c in contained:
        if not isinstance(c, dict):
            continue
        cid = c.get("id")
        if isinstance(cid, str) and "#" + cid in refs:
            continue
        inner: set[str] = set()
        _local_refs(c, inner)
        if "#" not in inner:         # neither referenced nor referring to its container
            return False
    return True


_MOMENT = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
                     r"(Z|[+-]\d{2}:\d{2})?)?)?)?")


def _moment(value: str) -> tuple[tuple[int, ...], datetime | None] | None:
    """(date parts present, the UTC instant when a time is given)."""
    m = _MOMENT.fullmatch(value)
    if m is None:
        return None
    parts = tuple(int(g) for g in m.groups()[:3] if g is not None)
    if m[4] is None:
        return parts, None
    tz = timezone.utc if m[8] in (None, "Z") else timezone(
        (1 if m[8][0] == "+" else -1) * timedelta(hours=int(m[8][1:3]), minutes=int(m[8][4:6])))
    micro = int((m[7] or "0")[:6].ljust(6, "0"))
    try:
        instant = datetime(parts[0], parts[1], parts[2], int(m[4]), int(m[5]), int(m[6] or 0), micro, tz)
    except ValueError:
        return None
    return parts, instant.astimezone(timezone.utc)


def _per_1(focus: Any, resource: dict, root: dict) -> bool:
    # start <= end with FHIRPath's precision rule: equal up to the shared precision but
    # of different precisions is "unknown", which does not fail the constraint
    start = focus.get("start") if isinstance(focus, dict) else None
    end = focus.get("end") if isinstance(focus, dict) else None
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    a, b = _moment(start), _moment(end)
    if a is None or b is None:
        return True                  # malformed dates are reported as format errors
    if a[1] is not None and b[1] is not None:
        return a[1] <= b[1]
    n = min(len(a[0]), len(b[0]))
    if a[0][:n] != b[0][:n]:
        return a[0][:n] < b[0][:n]
    return True


NATIVE: dict[tuple[str, str], Callable[[Any, dict, dict], bool]] = {
    ("ref-1", "reference.startsWith('#').not() or (reference.substring(1).trace('url') in "
              "%rootResource.contained.id.trace('ids')) or (reference='#' and %rootResource!=%resource)"): _ref_1,
    ("dom-3", "contained.where(((id.exists() and ('#'+id in (%resource.descendants().reference | "
              "%resource.descendants().as(canonical) | %resource.descendants().as(uri) | "
              "%resource.descendants().as(url)))) or descendants().where(reference = '#').exists() or "
              "descendants().where(as(canonical) = '#').exists() or descendants().where(as(uri) = '#').exists())"
              ".not()).trace('unmatched', id).empty()"): _dom_3,
    ("dom-6", "text.`div`.exists()"): _dom_6,
    ("per-1", "start.hasValue().not() or end.hasValue().not() or (start <= end)"): _per_1,
    ("txt-1", "htmlChecks()"): _narrative,
    ("txt-2", "htmlChecks()"): _narrative,
}


# -- absence guard -------------------------------------------------------------------------
class _Ineligible(Exception):
    pass


LAMBDA_FUNCTIONS = frozenset({"where", "select", "all", "exists", "repeat", "aggregate", "sort", "any"})
UNSTABLE_FUNCTIONS = frozenset({"now", "today", "timeOfDay"})
CONSTANTS = frozenset({"ucum", "sct", "loinc"})


def _function_name(invocation: dict) -> str:
    functn = invocation["children"][0]
    return functn["children"][0]["text"]


def _params(invocation: dict) -> list:
    functn = invocation["children"][0]
    return functn["children"][1:]


def _analyse(node: dict, at_focus: bool, names: set[str]) -> None:
    """Collect the child names the expression reads from the focus; raise _Ineligible when
    its value could depend on anything else about the focus."""
    kind = node.get("type")
    children = node.get("children") or []
    if kind == "TermExpression":
        term = children[0]
        ttype = term.get("type")
        if ttype == "InvocationTerm":
            inv = term["children"][0]
            itype = inv.get("type")
            if itype == "MemberInvocation":
                name = inv["children"][0]["text"]
                if at_focus:
                    if not name or name[0].isupper() or name.startswith("`"):
                        raise _Ineligible          # type name or delimited identifier
                    names.add(name)
            elif itype == "FunctionInvocation":
                if at_focus:
                    raise _Ineligible              # a function applied to the focus itself
                _function(inv, at_focus, names)
            elif at_focus:
                raise _Ineligible                  # $this, $index, $total on the focus
        elif ttype == "ExternalConstantTerm":
            ident = term["children"][0]["children"][0]
            text = ident.get("text", "")
            # %resource & co. matter only where evaluated whatever the focus holds; inside a
            # lambda they run only for items of a (present) child
            if at_focus and text not in CONSTANTS:
                raise _Ineligible
        elif ttype == "ParenthesizedTerm":
            _analyse(term["children"][0], at_focus, names)
        return                                     # literals
    if kind == "InvocationExpression":
        _analyse(children[0], at_focus, names)
        inv = children[1]
        if inv.get("type") == "FunctionInvocation":
            _function(inv, at_focus, names)
        return
    if kind == "TypeExpression":
        _analyse(children[0], at_focus, names)
        return
    for child in children:
        if isinstance(child, dict):
            _analyse(child, at_focus, names)


def _function(inv: dict, at_focus: bool, names: set[str]) -> None:
    fname = _function_name(inv)
    if fname in UNSTABLE_FUNCTIONS:
        raise _Ineligible
    for params in _params(inv):
        for param in params.get("children") or []:
            # lambda arguments are evaluated on each item, others on the enclosing focus
            _analyse(param, False if fname in LAMBDA_FUNCTIONS else at_focus, names)


def absence_guard(expression: str) -> tuple[str, ...] | None:
    try:
        tree = parse(expression)
        names: set[str] = set()
        _analyse(tree["children"][0], True, names)
    except (_Ineligible, KeyError, IndexError, TypeError):
        return None
    except Exception:   # parse errors are reported by the compiler
        return None
    return tuple(sorted(names)) if names else None


# -- syntax --------------------------------------------------------------------------------
class _RaiseOnError(ErrorListener):
    def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):  # noqa: N802, N803
        raise SyntaxError(f"column {column}: {msg}")


def check_syntax(expression: str) -> None:
    """fhirpathpy's parser recovers silently from syntax errors (``name.where((`` compiles
    and fails later); parse with its grammar strictly, to the end of the text, first."""
    listener = _RaiseOnError()
    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(listener)
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(listener)
    parser.entireExpression()


# -- compiler ------------------------------------------------------------------------------
class InvariantCompiler:
    def __init__(self, choice_names: frozenset[str] = frozenset(), type_names: frozenset[str] = frozenset()):
        self.choice_names = choice_names     # value, effective, onset... (elements named x[x])
        self.type_names = type_names         # every FHIR type: the suffixes of choice elements
        self.skipped: dict[str, str] = {}        # "key: expression" -> why it is not evaluated
        self._cache: dict[str, Callable] = {}    # expression -> evaluator (compile once)
        self._lock = threading.Lock()

    def skip(self, inv: Invariant, reason: str) -> None:
        label = f"{inv.key}: {inv.expression}"
        if label not in self.skipped:
            self.skipped[label] = reason
            log.warning("invariant %s not evaluated: %s", label, reason)
        inv.evaluate = None

    def compile(self, key: str, severity: str, human: str, expression: str | None, source: str) -> Invariant:
        inv = Invariant(key, severity, human, expression or "", source)
        if not expression:
            self.skip(inv, "no FHIRPath expression")
            return inv
        native = NATIVE.get((key, expression))
        if native is not None:
            inv.evaluate = lambda focus, type_path, resource, root: native(focus, resource, root)
            return inv
        with self._lock:
            evaluator = self._cache.get(expression)
            if evaluator is None:
                try:
                    evaluator = self._build(expression)
                except Exception as exc:        # fhirpathpy grammar gaps
                    evaluator = None
                    self._cache[expression] = False
                    self.skip(inv, f"fhirpathpy cannot compile it ({str(exc)[:80]})")
                    return inv
                self._cache[expression] = evaluator
            elif evaluator is False:
                self.skip(inv, "fhirpathpy cannot compile it")
                return inv
        inv.evaluate = evaluator
        return inv

    def _build(self, expression: str) -> Callable:
        check_syntax(expression)
        compiled = fhirpathpy.compile(expression, MODEL, OPTIONS)
        guard = absence_guard(expression)
        choice = tuple(n for n in guard or () if n in self.choice_names)
        exact = tuple(guard or ())
        absent: dict[str, bool] = {}
        fast = None
        if self.type_names and self.choice_names:      # navigating value[x] needs both
            try:
                suffixes = frozenset(t[:1].upper() + t[1:] for t in self.type_names)
                fast = FastCompiler(self.choice_names, suffixes).compile(expression)
            except (Unsupported, KeyError, IndexError, TypeError, ValueError):
                fast = None                   # outside the fast subset: fhirpathpy only

        def slow(focus: Any, type_path: str, resource: dict, root: dict) -> bool:
            # a resource goes in as is: fhirpathpy types it from resourceType, and only then
            # resolves a leading type name (``Appointment.status``); other values need the path
            typed = type_path and not (type(focus) is dict and "resourceType" in focus)
            node = ResourceNode.create_node(focus, type_path) if typed else focus
            result = compiled(node, {"resource": resource, "rootResource": root})
            # false only on an explicit false: an empty result is "not applicable"
            return not (len(result) == 1 and result[0] is False)

        if fast is None:
            run = slow
        else:
            def run(focus: Any, type_path: str, resource: dict, root: dict) -> bool:
                try:
                    return fast(focus, resource, root)
                except Fallback:
                    return slow(focus, type_path, resource, root)

        if not guard:
            run.fast, run.slow = fast, slow      # for the tests comparing both engines
            return run

        def guarded(focus: Any, type_path: str, resource: dict, root: dict) -> bool:
            if isinstance(focus, dict):
                for name in exact:
                    if name in focus or "_" + name in focus:
                        return run(focus, type_path, resource, root)
                for name in choice:
                    n = len(name)
                    for k in focus:
                        s = k[1:] if k[:1] == "_" else k
                        if len(s) > n and s.startswith(name) and s[n].isupper():
                            return run(focus, type_path, resource, root)
                cached = absent.get(type_path)
                if cached is None:
                    cached = absent[type_path] = run({}, type_path, {}, {})
                return cached
            return run(focus, type_path, resource, root)

        guarded.fast, guarded.slow = fast, slow
        # what the result depends on, when no choice element is involved (see Walker.conform)
        guarded.names = None if choice else exact
        return guarded
