"""Evaluating SearchParameter expressions at write time, fast.

fhirpathpy is the semantic reference but costs ~15 µs per expression per resource; a Patient
has ~30 parameters, which alone would cap ingest far below its target.  Search expressions
use a tiny part of FHIRPath (dotted paths, unions, ``as``/``ofType``, ``where(resolve() is
T)``, ``where(field='x')``, ``extension(url)``, ``[n]``, ``%resource``), so those compile
into plain Python closures over the JSON; anything else falls back to fhirpathpy (with a
``resolve()`` that types a reference from its string, since the index never dereferences).
``tests/search/test_fhirpath.py`` checks the fast path against fhirpathpy on every official
example.
"""
from __future__ import annotations

import re
from typing import Any, Callable

from ehr.definitions import load

Nodes = list[Any]
Step = Callable[[Nodes], Nodes]

_RESOURCE_TYPES = frozenset(load("resources")) | {"Resource", "DomainResource"}
# Suffixes of choice elements in JSON: valueQuantity, deceasedDateTime, onsetAge...
_CHOICE_SUFFIXES = frozenset(t[0].upper() + t[1:] for t in load("datatypes"))
_CHOICE_NAMES = frozenset(load("choice-elements"))

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^'\\]|\\.)*')|(?P<num>\d+)|(?P<var>%[A-Za-z]\w*)|(?P<id>[A-Za-z_]\w*)"
    r"|(?P<op>!=|[.()\[\]|=,]))"
)


class Unsupported(Exception):
    """The expression needs more of FHIRPath than the fast path offers."""


def reference_type(ref: dict) -> str | None:
    """The resource type a Reference points to, from its literal reference or its ``type``."""
    literal = ref.get("reference")
    if isinstance(literal, str) and not literal.startswith("#"):
        parts = literal.split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2][:1].isupper():
            return parts[-2]
    t = ref.get("type")
    return t if isinstance(t, str) else None


def _choice(node: dict, name: str) -> Any:
    n = len(name)
    for key, value in node.items():
        if len(key) > n and key.startswith(name) and key[n:] in _CHOICE_SUFFIXES:
            return value
    return None


def _extend(out: Nodes, value: Any) -> None:
    if type(value) is list:
        out.extend(v for v in value if v is not None)
    elif value is not None:
        out.append(value)


def _child(name: str) -> Step:
    if name not in _CHOICE_NAMES:  # most elements: one dict lookup

        def plain(nodes: Nodes) -> Nodes:
            out: Nodes = []
            for node in nodes:
                if type(node) is dict:
                    _extend(out, node.get(name))
            return out

        return plain

    def step(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if type(node) is dict:
                value = node.get(name)
                _extend(out, value if value is not None else _choice(node, name))
        return out

    return step


def _typed_child(name: str, type_name: str) -> Step:
    key = name + type_name[0].upper() + type_name[1:]

    def step(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if type(node) is dict:
                _extend(out, node.get(key))
        return out

    return step


def _where_reference_is(type_name: str) -> Step:
    def step(nodes: Nodes) -> Nodes:
        return [n for n in nodes if type(n) is dict and reference_type(n) == type_name]

    return step


def _where_equals(field: str, literal: str) -> Step:
    def step(nodes: Nodes) -> Nodes:
        return [n for n in nodes if type(n) is dict and n.get(field) == literal]

    return step


def _extension(url: str) -> Step:
    def step(nodes: Nodes) -> Nodes:
        out: Nodes = []
        for node in nodes:
            if type(node) is dict:
                for ext in node.get("extension") or ():
                    if type(ext) is dict and ext.get("url") == url:
                        out.append(ext)
        return out

    return step


def _index(i: int) -> Step:
    return lambda nodes: nodes[i : i + 1]


def _root_type(name: str) -> Step:
    if name in ("Resource", "DomainResource"):
        return lambda nodes: [n for n in nodes if type(n) is dict and "resourceType" in n]
    return lambda nodes: [n for n in nodes if type(n) is dict and n.get("resourceType") == name]


class _Parser:
    """Recursive descent over the subset; builds closures ``(nodes, root) -> nodes``."""

    def __init__(self, text: str):
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise Unsupported(f"cannot read {text[pos:]!r}")
            kind = m.lastgroup
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.pos = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        i = self.pos + offset
        return self.tokens[i] if i < len(self.tokens) else None

    def take(self, value: str | None = None, kind: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value) or (kind is not None and tok[0] != kind):
            raise Unsupported(f"expected {value or kind}, found {tok}")
        self.pos += 1
        return tok[1]

    def at(self, value: str) -> bool:
        tok = self.peek()
        return tok is not None and tok[0] == "op" and tok[1] == value

    def parse(self) -> Callable[[Nodes, dict], Nodes]:
        fn = self.union()
        if self.peek() is not None:
            raise Unsupported(f"unexpected {self.peek()}")
        return fn

    def union(self):
        branches = [self.as_expr()]
        while self.at("|"):
            self.take("|")
            branches.append(self.as_expr())
        if len(branches) == 1:
            return branches[0]

        def run(nodes: Nodes, root: dict) -> Nodes:
            out: Nodes = []
            for branch in branches:
                out.extend(branch(nodes, root))
            return out

        return run

    def as_expr(self):
        start, steps, last_child = self.postfix()
        tok = self.peek()
        if tok == ("id", "as"):
            self.take()
            steps = self._typed(steps, last_child, self.take(kind="id"))
        elif tok is not None and tok[0] == "id":
            raise Unsupported(f"operator {tok[1]}")
        return self._chain(start, steps)

    @staticmethod
    def _typed(steps: list, last_child: str | None, type_name: str) -> list:
        if last_child is None or not steps:
            raise Unsupported("as/ofType only after an element name")
        return steps[:-1] + [_typed_child(last_child, type_name)]

    @staticmethod
    def _chain(start, steps: list):
        def run(nodes: Nodes, root: dict) -> Nodes:
            cur = start(nodes, root)
            for step in steps:
                if not cur:
                    return cur
                cur = step(cur)
            return cur

        return run

    def postfix(self):
        steps: list[Step] = []
        last_child: str | None = None
        tok = self.peek()
        if tok is None:
            raise Unsupported("empty expression")
        if self.at("("):
            self.take("(")
            start = self.union()
            self.take(")")
        elif tok[0] == "var":
            self.take()
            if tok[1] not in ("%resource", "%rootResource", "%context"):
                raise Unsupported(tok[1])
            start = (lambda nodes, root: [root]) if tok[1] != "%context" else (lambda nodes, root: nodes)
        elif tok[0] == "id":
            name = self.take()
            if self.at("("):
                raise Unsupported(f"function {name}() at the start")
            start = lambda nodes, root: nodes  # noqa: E731
            if name[:1].isupper() and name in _RESOURCE_TYPES:
                steps.append(_root_type(name))
            else:
                steps.append(_child(name))
                last_child = name
        else:
            raise Unsupported(f"unexpected {tok}")
        while True:
            if self.at("["):
                self.take("[")
                steps.append(_index(int(self.take(kind="num"))))
                self.take("]")
                last_child = None
            elif self.at("."):
                self.take(".")
                name = self.take(kind="id")
                if not self.at("("):
                    steps.append(_child(name))
                    last_child = name
                    continue
                self.take("(")
                steps = self.function(name, steps, last_child)
                self.take(")")
                last_child = None
            else:
                return start, steps, last_child

    def function(self, name: str, steps: list, last_child: str | None) -> list:
        if name in ("as", "ofType"):
            return self._typed(steps, last_child, self.take(kind="id"))
        if name == "extension":
            url = self.take(kind="str")[1:-1]
            return steps + [_extension(url)]
        if name == "where":
            tok = self.peek()
            if tok == ("id", "resolve") and self.peek(1) == ("op", "("):
                self.take()
                self.take("(")
                self.take(")")
                if self.take(kind="id") != "is":
                    raise Unsupported("resolve() without is")
                return steps + [_where_reference_is(self.take(kind="id"))]
            if tok is not None and tok[0] == "id" and self.peek(1) == ("op", "="):
                field = self.take()
                self.take("=")
                literal = self.take(kind="str")[1:-1]
                return steps + [_where_equals(field, literal)]
        raise Unsupported(f"function {name}()")


def _resolve(inputs: list) -> list:
    from fhirpathpy.engine.nodes import ResourceNode

    out = []
    for ref in inputs:
        if isinstance(ref, dict) and (rtype := reference_type(ref)):
            out.append(ResourceNode.create_node({"resourceType": rtype}, rtype))
    return out


def compile_reference(expression: str) -> Callable[[Any, dict | None], Nodes]:
    """fhirpathpy's evaluation of ``expression`` (the semantic reference)."""
    import fhirpathpy
    from fhirpathpy.models import models

    fn = fhirpathpy.compile(
        expression, models["r4"], {"userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}}}
    )

    def run(node: Any, root: dict | None = None) -> Nodes:
        return fn(node, {"resource": root if root is not None else node, "rootResource": root or node})

    return run


class CompiledPath:
    """``path(node, root)`` -> the list of JSON values the expression selects from ``node``."""

    __slots__ = ("expression", "fast", "_fn")

    def __init__(self, expression: str):
        self.expression = expression
        try:
            fn = _Parser(expression).parse()
            self.fast = True
            self._fn = lambda node, root: fn([node], root if root is not None else node)
        except Unsupported:
            self.fast = False
            self._fn = compile_reference(expression)

    def __call__(self, node: Any, root: dict | None = None) -> Nodes:
        return self._fn(node, root)


def compile_path(expression: str) -> CompiledPath:
    """Compile once (at first use of a parameter), evaluate per resource."""
    return CompiledPath(expression)


def check_expression(expression: str) -> None:
    """Raise ValueError unless ``expression`` is valid FHIRPath (fhirpathpy's grammar, with
    errors raised instead of silently recovered as ``fhirpathpy.parser.parse`` does)."""
    from antlr4 import CommonTokenStream, InputStream, Token
    from antlr4.error.ErrorListener import ErrorListener
    from fhirpathpy.parser.generated.FHIRPathLexer import FHIRPathLexer
    from fhirpathpy.parser.generated.FHIRPathParser import FHIRPathParser

    class _Raise(ErrorListener):
        def syntaxError(self, recognizer, offendingSymbol, line, column, msg, e):
            raise ValueError(f"at {column}: {msg}")

    lexer = FHIRPathLexer(InputStream(expression))
    lexer.removeErrorListeners()
    lexer.addErrorListener(_Raise())
    parser = FHIRPathParser(CommonTokenStream(lexer))
    parser.removeErrorListeners()
    parser.addErrorListener(_Raise())
    parser.expression()
    if parser.getCurrentToken().type != Token.EOF:
        raise ValueError(f"unexpected {parser.getCurrentToken().text!r}")
