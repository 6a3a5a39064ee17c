"""Mutants of a Python module: small, plausible one-place bugs, made from its syntax tree.

Each mutant changes one span of the source text and nothing else, so line numbers in
tracebacks still point at the original code. The operators are the slips a tired engineer
makes:

    arithmetic      a + b -> a - b, a * b -> a / b, a ** b -> a * b, // -> /, +=  -> -=
    comparison      < -> <=, > -> >=, == -> !=, is -> is not, in -> not in (and back)
    boolean         and <-> or; `not x` -> x; `if x:` -> `if not (x):`
    sign            -x -> x
    number          n -> n + 1 (ints and floats); True <-> False
    call            f(x) -> x, for a math or library function of one argument
    keyword         f(..., name=value) -> f(...): a keyword argument dropped
    statement       a call made for its effect (`self.check(x)`) -> `pass`

Not mutated: docstrings and other strings, type annotations, default values in `def`
signatures (a default is a documented choice, not a computation), the arguments of a
`raise` (the error's message), and any line marked `# pragma: no mutate`.

A mutant's `key` names it by file, enclosing function and text, not by line number, so a
list of known-equivalent mutants survives unrelated edits.
"""

from __future__ import annotations

import ast
import dataclasses
import re

#: Call-to-argument mutants skip functions whose removal only changes a type or a view.
_CONVERSIONS = {
    "array", "asarray", "cast", "convert_to_tensor", "float", "float32", "float64", "int",
    "identity", "len", "list", "tuple", "dict", "set", "str", "bool", "repr", "type",
    "isinstance", "super", "iter", "next", "sorted", "reversed", "enumerate", "zip", "range",
    "print", "getattr", "hasattr", "id", "vars", "any", "all", "Path", "constant",
}  # fmt: skip
_LIBRARY_ROOTS = {"tf", "np", "tfd", "math", "npmath", "keras", "ops", "scipy", "special"}

_BINARY = {
    ast.Add: (ast.Sub, "+", "-"),
    ast.Sub: (ast.Add, "-", "+"),
    ast.Mult: (ast.Div, "*", "/"),
    ast.Div: (ast.Mult, "/", "*"),
    ast.FloorDiv: (ast.Div, "//", "/"),
    ast.Pow: (ast.Mult, "**", "*"),
    ast.Mod: (ast.FloorDiv, "%", "//"),
}
_COMPARE = {
    ast.Lt: ("<", "<="),
    ast.LtE: ("<=", "<"),
    ast.Gt: (">", ">="),
    ast.GtE: (">=", ">"),
    ast.Eq: ("==", "!="),
    ast.NotEq: ("!=", "=="),
    ast.Is: ("is", "is not"),
    ast.IsNot: ("is not", "is"),
    ast.In: ("in", "not in"),
    ast.NotIn: ("not in", "in"),
}


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change: bytes `[start, end)` of the file's UTF-8 source become `replacement`.

    Attributes:
        path: the file, as given to `mutants_of`.
        function: the qualified name of the enclosing function or class ("<module>").
        line: the 1-based line where the change starts.
        operator: the operator's name, e.g. "arithmetic".
        original: the source text that changes.
        replacement: its new text.
        occurrence: 0 for the first mutant with this (function, original, replacement)
            in the file, 1 for the second, ...
    """

    path: str
    function: str
    line: int
    operator: str
    original: str
    replacement: str
    start: int
    end: int
    occurrence: int = 0

    @property
    def key(self) -> str:
        """A name that does not depend on line numbers: path::function::original -> new."""
        suffix = f" #{self.occurrence + 1}" if self.occurrence else ""
        return f"{self.path}::{self.function}::{self.original!r} -> {self.replacement!r}{suffix}"

    def apply(self, source: str) -> str:
        """The mutated source text."""
        data = source.encode()
        return (data[: self.start] + self.replacement.encode() + data[self.end :]).decode()


def mutants_of(path: str, source: str) -> list[Mutant]:
    """Every mutant of `source` (the text of the file `path`), in source order."""
    collector = _Collector(path, source)
    collector.visit(ast.parse(source))
    counts: dict[tuple, int] = {}
    numbered = []
    for mutant in sorted(collector.mutants, key=lambda m: (m.start, m.end, m.replacement)):
        identity = (mutant.function, mutant.original, mutant.replacement)
        numbered.append(dataclasses.replace(mutant, occurrence=counts.get(identity, 0)))
        counts[identity] = counts.get(identity, 0) + 1
    return numbered


class _Collector(ast.NodeVisitor):
    def __init__(self, path, source):
        self.path = path
        self.source = source.encode()
        line_starts = [0]
        for line in self.source.splitlines(keepends=True):
            line_starts.append(line_starts[-1] + len(line))
        self.line_starts = line_starts
        self.quiet_lines = {
            number
            for number, line in enumerate(source.splitlines(), start=1)
            if "pragma: no mutate" in line
        }
        self.scope = []
        self.mutants = []

    # Positions -------------------------------------------------------------------------

    def _offset(self, line, col):
        return self.line_starts[line - 1] + col

    def _span(self, node):
        return self._offset(node.lineno, node.col_offset), self._offset(
            node.end_lineno, node.end_col_offset
        )

    def _text(self, start, end):
        return self.source[start:end].decode()

    def _add(self, node, operator, start, end, replacement):
        line = self.source[:start].count(b"\n") + 1
        if line in self.quiet_lines or node.lineno in self.quiet_lines:
            return
        mutant = Mutant(
            path=self.path,
            function=".".join(self.scope) or "<module>",
            line=line,
            operator=operator,
            original=self._text(start, end),
            replacement=replacement,
            start=start,
            end=end,
        )
        self.mutants.append(mutant)

    def _between(self, left, right, symbol):
        """The span of `symbol` in the text between two nodes (an operator's token)."""
        start = self._span(left)[1]
        end = self._span(right)[0]
        gap = self._text(start, end)
        pattern = r"(?<![\w<>=!*/])" + re.escape(symbol) + r"(?![\w<>=*/])"
        match = re.search(pattern.replace(r"\ ", r"\s+"), gap)
        if match is None:
            return None
        head = len(gap[: match.start()].encode())
        return start + head, start + head + len(match.group().encode())

    # What is never mutated -------------------------------------------------------------

    def _visit_body(self, node, name):
        self.scope.append(name)
        for decorator in node.decorator_list:
            self.visit(decorator)
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        for statement in body:
            self.visit(statement)
        self.scope.pop()

    def visit_FunctionDef(self, node):
        self._visit_body(node, node.name)  # not the signature: defaults and annotations

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        for base in node.bases:
            self.visit(base)
        self._visit_body(node, node.name)

    def visit_Module(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]
        for statement in body:
            self.visit(statement)

    def visit_Raise(self, node):
        pass  # the error's message

    def visit_AnnAssign(self, node):
        if node.value is not None:
            self.visit(node.value)

    def visit_JoinedStr(self, node):
        pass  # f-strings: messages

    def visit_Assign(self, node):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return
        self.generic_visit(node)

    # The operators ---------------------------------------------------------------------

    def visit_BinOp(self, node):
        if type(node.op) in _BINARY:
            _, symbol, new = _BINARY[type(node.op)]
            span = self._between(node.left, node.right, symbol)
            if span:
                self._add(node, "arithmetic", *span, new)
        self.generic_visit(node)

    def visit_AugAssign(self, node):
        if type(node.op) in _BINARY:
            _, symbol, new = _BINARY[type(node.op)]
            span = self._between(node.target, node.value, symbol + "=")
            if span:
                self._add(node, "arithmetic", *span, new + "=")
        self.visit(node.value)

    def visit_Compare(self, node):
        left = node.left
        for op, right in zip(node.ops, node.comparators, strict=True):
            symbol, new = _COMPARE[type(op)]
            span = self._between(left, right, symbol)
            if span:
                self._add(node, "comparison", *span, new)
            left = right
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        symbol, new = ("and", "or") if isinstance(node.op, ast.And) else ("or", "and")
        for left, right in zip(node.values, node.values[1:], strict=False):
            span = self._between(left, right, symbol)
            if span:
                self._add(node, "boolean", *span, new)
        self.generic_visit(node)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, (ast.USub, ast.Not)):
            start = self._span(node)[0]
            symbol = "-" if isinstance(node.op, ast.USub) else "not"
            prefix = self._text(start, self._span(node.operand)[0])  # "-", "not ", "-(", ...
            end = (
                start
                + len(symbol)
                + len(prefix[len(symbol) :])
                - len(prefix[len(symbol) :].lstrip())
            )
            operator = "sign" if isinstance(node.op, ast.USub) else "boolean"
            self._add(node, operator, start, end, "")
        self.generic_visit(node)

    def _negate_test(self, test):
        if not isinstance(test, (ast.Compare, ast.BoolOp, ast.UnaryOp)):
            start, end = self._span(test)
            self._add(test, "boolean", start, end, f"not ({self._text(start, end)})")

    def visit_If(self, node):
        self._negate_test(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self._negate_test(node.test)
        self.generic_visit(node)

    def visit_Constant(self, node):
        value = node.value
        if isinstance(value, bool):
            self._add(node, "number", *self._span(node), str(not value))
        elif isinstance(value, (int, float)):
            self._add(node, "number", *self._span(node), repr(value + 1))

    def visit_Call(self, node):
        name = _called_name(node.func)
        if (
            name is not None
            and name not in _CONVERSIONS
            and len(node.args) == 1
            and not node.keywords
            and not isinstance(node.args[0], ast.Starred)
            and (_root(node.func) in _LIBRARY_ROOTS or isinstance(node.func, ast.Name))
        ):
            start, end = self._span(node)
            self._add(node, "call", start, end, f"({self._text(*self._span(node.args[0]))})")
        for position, keyword in enumerate(node.keywords):
            if keyword.arg is None:
                continue
            start, end = self._span(keyword)
            previous = node.keywords[position - 1] if position else None
            anchor = previous or (node.args[-1] if node.args else None)
            if anchor is not None:
                start = self._span(anchor)[1]  # drop the comma before the keyword too
            else:
                following = self._text(end, self._span(node)[1])
                end += len(following) - len(following.lstrip(" ,\n"))
            self._add(node, "keyword", start, end, "")
        self.generic_visit(node)

    def visit_Expr(self, node):
        if isinstance(node.value, ast.Call):
            self._add(node, "statement", *self._span(node), "pass")
        self.generic_visit(node)


def _called_name(func):
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _root(func):
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else None
