"""CEL expressions for `fail_if_body_json_(not_)matches_cel`, compiled at load like blackbox's NewCELProgram.

The environment has one variable, `body` (dyn). cel-python parses without type-checking, so an
undeclared identifier (`foo.bar`) is rejected here by walking the parse tree, as cel-go's checker would.
"""

from __future__ import annotations

from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from probe_exporter.extras import MissingExtra, required

# Names that are not variables: CEL's type identifiers (usable as values, e.g. `type(x) == int`).
_TYPE_NAMES = {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type", "dyn"}
# Macros whose first argument binds a loop variable: `body.items.all(x, x > 0)`.
_BINDING_MACROS = {"all", "exists", "exists_one", "map", "filter"}


class CELError(ValueError):
    pass


class CELProgram:
    """A compiled CEL expression, kept with its source for /config."""

    __slots__ = ("_missing", "_program", "expression")

    def __init__(self, expression: str) -> None:
        self.expression = expression
        self._missing: MissingExtra | None = None
        try:
            with required("cel"):
                import celpy
        except MissingExtra as err:  # the module still loads; its probes fail with "install ...[cel]"
            self._missing = err
            return
        env = celpy.Environment()
        try:
            ast = env.compile(expression)
        except Exception as err:
            raise CELError(f"error compiling CEL program: {_one_line(err)}") from None
        undeclared = sorted(_free_identifiers(ast) - {"body"} - _TYPE_NAMES)
        if undeclared:
            raise CELError(f"error compiling CEL program: ERROR: <input>: undeclared reference to "
                           f"'{undeclared[0]}' (in container '')")
        try:
            self._program = env.program(ast)
        except Exception as err:
            raise CELError(f"error creating CEL program: {_one_line(err)}") from None

    def evaluate(self, body: Any) -> Any:
        """The result for a decoded JSON body; raises on an evaluation error (missing key, bad type)."""
        if self._missing is not None:
            raise self._missing
        from celpy.adapter import json_to_cel

        result = self._program.evaluate({"body": json_to_cel(body)})
        if isinstance(result, Exception):
            raise result
        return result

    def __repr__(self) -> str:
        return f"CELProgram({self.expression!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CELProgram) and other.expression == self.expression

    def __hash__(self) -> int:
        return hash(self.expression)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls._validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda p: p.expression))

    @classmethod
    def _validate(cls, value: Any) -> CELProgram:
        if isinstance(value, CELProgram):
            return value
        if not isinstance(value, str):
            raise ValueError("CEL expression must be a string")
        return cls(value)


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split()) or type(err).__name__


def _free_identifiers(tree: Any) -> set[str]:
    """Identifiers used as variables (`primary -> ident`), minus macro loop variables."""
    used: set[str] = set()
    bound: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        data = getattr(node, "data", None)
        if data is None:
            continue
        children = node.children
        if data == "primary" and children and getattr(children[0], "type", None) in ("IDENT", None):
            token = children[0]
            if getattr(token, "data", None) == "ident" and token.children:
                used.add(str(token.children[0]))
        if data == "member_dot_arg" and len(children) >= 3 and str(children[1]) in _BINDING_MACROS:
            args = getattr(children[2], "children", [])
            if args:
                first = _sole_ident(args[0])
                if first:
                    bound.add(first)
        stack.extend(c for c in children if hasattr(c, "data"))
    return used - bound


def _sole_ident(expr: Any) -> str | None:
    """The name if `expr` is nothing but an identifier."""
    node = expr
    while hasattr(node, "children") and len(node.children) == 1 and getattr(node, "data", "") != "ident":
        node = node.children[0]
    if getattr(node, "data", None) == "ident" and node.children:
        return str(node.children[0])
    return None
