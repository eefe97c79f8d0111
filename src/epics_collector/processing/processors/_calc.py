"""``calc``: an EPICS-calc-like expression over the inputs, evaluated safely.

The expression is parsed with Python's ``ast`` module and evaluated by walking a
whitelist of node types (decision record 0007): numbers, input names, ``pi``/``e``,
arithmetic (``+ - * / % **`` and EPICS's ``^``), comparisons, ``and``/``or``/``not``
(EPICS ``&&``, ``||``, ``!``; ``#`` is not-equal), and calls to a fixed table of numpy
functions. No attribute access, subscripts, imports, lambdas or Python ``eval``.
"""

from __future__ import annotations

import ast
import operator
import re
import threading
from collections.abc import Callable
from typing import Any, cast

import numpy as np
from pydantic import Field, field_validator

from epics_collector.processing._api import Inputs, Outputs, Params, Processor

FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(np, name)
    for name in (
        "abs",
        "sqrt",
        "exp",
        "log",
        "log10",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "arctan2",
        "sinh",
        "cosh",
        "tanh",
        "floor",
        "ceil",
        "round",
        "minimum",
        "maximum",
        "where",
        "clip",
        "mean",
        "std",
        "sum",
        "min",
        "max",
        "median",
        "hypot",
    )
} | {"ln": np.log, "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan, "atan2": np.arctan2}
CONSTANTS = {"pi": np.pi, "e": np.e}
_PARSE_LOCK = threading.Lock()
_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


def to_python(expression: str) -> str:
    """EPICS calc spellings to Python's: ``^`` power, ``#`` not-equal, ``&&``/``||``/``!``."""
    text = expression.replace("&&", " and ").replace("||", " or ").replace("^", "**")
    text = text.replace("#", "!=")
    return re.sub(r"!(?!=)", " not ", text).strip()


def compile_expression(expression: str, names: set[str] | None) -> ast.Expression:
    """Parse and check an expression; raise ``ValueError`` naming what is not allowed.

    ``names`` are the inputs; ``None`` skips checking names (syntax only).
    """
    try:
        with _PARSE_LOCK:  # CPython 3.11 may fail parsing in two threads at once
            tree = ast.parse(to_python(expression), mode="eval")
    except SyntaxError as error:
        raise ValueError(f"cannot parse {expression!r}: {error.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            known = names is None or node.id in names
            if not known and node.id not in CONSTANTS and node.id not in FUNCTIONS:
                raise ValueError(f"unknown name {node.id!r} in {expression!r}")
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                raise ValueError(
                    f"only these functions may be called: {', '.join(sorted(FUNCTIONS))}"
                )
            if node.keywords:
                raise ValueError("keyword arguments are not allowed")
        elif not isinstance(
            node,
            ast.Expression
            | ast.BinOp
            | ast.UnaryOp
            | ast.Compare
            | ast.BoolOp
            | ast.IfExp
            | ast.Constant
            | ast.Load
            | ast.operator
            | ast.unaryop
            | ast.cmpop
            | ast.boolop,
        ):
            raise ValueError(f"{type(node).__name__} is not allowed in {expression!r}")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise ValueError(f"only numbers may be literals in {expression!r}")
    _check_constants(tree.body, expression)
    return tree


def _check_constants(node: ast.AST, expression: str) -> None:
    """Refuse a part without inputs that cannot be computed (``9^9^8`` overflows)."""
    if not isinstance(node, ast.expr):
        return
    if not any(isinstance(n, ast.Name) and n.id not in CONSTANTS for n in ast.walk(node)):
        with np.errstate(all="ignore"):
            try:
                evaluate(node, {})
            except (OverflowError, ZeroDivisionError, ValueError) as error:
                part = ast.unparse(node)
                raise ValueError(
                    f"{part!r} in {expression!r} cannot be computed: {error}"
                ) from None
        return
    for child in ast.iter_child_nodes(node):
        _check_constants(child, expression)


def evaluate(node: ast.AST, values: dict[str, Any]) -> Any:
    """Evaluate a checked tree."""
    if isinstance(node, ast.Expression):
        return evaluate(node.body, values)
    if isinstance(node, ast.Constant):
        return float(cast(float, node.value))  # float arithmetic: 9**9**8 overflows at once
    if isinstance(node, ast.Name):
        if node.id in values:
            value = values[node.id]
            return float(value) if isinstance(value, int) else value  # (bool too)
        return CONSTANTS[node.id]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](evaluate(node.left, values), evaluate(node.right, values))
    if isinstance(node, ast.UnaryOp):
        operand = evaluate(node.operand, values)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return +operand
        return np.logical_not(operand)
    if isinstance(node, ast.Compare):
        left, result = evaluate(node.left, values), True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = evaluate(right_node, values)
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
            left = right
        return result
    if isinstance(node, ast.BoolOp):
        parts = [evaluate(v, values) for v in node.values]
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = parts[0]
        for part in parts[1:]:
            result = combine(result, part)
        return result
    if isinstance(node, ast.IfExp):
        return np.where(
            evaluate(node.test, values), evaluate(node.body, values), evaluate(node.orelse, values)
        )
    if isinstance(node, ast.Call):
        assert isinstance(node.func, ast.Name)
        return FUNCTIONS[node.func.id](*(evaluate(a, values) for a in node.args))
    raise ValueError(f"{type(node).__name__} is not allowed")  # checked before; defensive


class CalcParams(Params):
    """The expression; inputs are referred to by their names."""

    expression: str = Field(min_length=1, max_length=2000, description="e.g. a * 2 + b")

    @field_validator("expression")
    @classmethod
    def _parses(cls, expression: str) -> str:
        compile_expression(expression, names=None)  # names are checked against the inputs
        return expression


class Calc(Processor[CalcParams]):
    """``result`` = the expression over the inputs (floats, or numpy arrays)."""

    params_model = CalcParams
    default_outputs = {"result": "float64"}

    _compiled: tuple[str, ast.Expression] | None = None

    def check(self, input_names: set[str]) -> None:
        """Every name in the expression is an input, a constant or a function."""
        self._compiled = None
        compile_expression(self.params.expression, input_names)
        self._names = input_names

    def process(self, inputs: Inputs) -> Outputs:
        """Evaluate the expression with the inputs' values."""
        expression = self.params.expression
        if self._compiled is None or self._compiled[0] != expression:
            self._compiled = (expression, compile_expression(expression, set(inputs)))
        result = evaluate(self._compiled[1], {name: value.value for name, value in inputs.items()})
        return {"result": result}
