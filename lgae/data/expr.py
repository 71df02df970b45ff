"""A restricted expression language for ``selection`` and ``new_variables`` in the data YAML.

Expressions are parsed with :func:`ast.parse` (``mode="eval"``) and only a whitelist of node types is
accepted, so a data YAML can never run arbitrary Python (no attribute access, no imports, no lambdas, no
strings). What is allowed:

* **names**: branches of the file (numpy arrays for one value per jet, awkward arrays for one value per
  particle) and variables defined earlier in ``new_variables``;
* **numbers** (``1``, ``2.5``, ``1e3``, ``True``/``False``); all numbers are evaluated as float64 so
  ``9**9**9`` overflows to ``inf`` instead of computing a huge integer;
* **arithmetic** ``+ - * / // % **`` and unary ``-``/``+``;
* **comparisons** ``< <= > >= == !=``; a chain such as ``400 < jet_pt < 600`` means
  ``(400 < jet_pt) & (jet_pt < 600)``;
* **logic** ``&``, ``|``, ``~`` and ``and``, ``or``, ``not``: all *elementwise logical* operations
  (``np.logical_*``). Mind Python's precedence: ``&`` binds tighter than ``<``, so write ``(jet_pt > 500) &
  (jet_eta < 2)`` or use ``and``;
* **functions** (:data:`FUNCTIONS`): ``abs sqrt log log10 exp sin cos tan sinh cosh tanh arcsin arccos arctan
  arcsinh arccosh arctanh arctan2 hypot minimum maximum where clip isfinite num sum max min mean``. ``num(x)``
  is the number of particles of a per-particle array; ``sum/max/min/mean(x)`` reduce over the particles of
  each jet (``max``/``min`` give ``-inf``/``+inf`` and ``mean`` gives NaN for a jet without particles);
  ``max(a, b)``/``min(a, b)`` with two arguments are the elementwise ``maximum``/``minimum``. The prefixes
  ``np.``, ``numpy.``, ``ak.`` and ``awkward.`` are accepted in front of a whitelisted function
  (``np.hypot(part_px, part_py)``, ``ak.num(part_px)``), as in weaver's YAML files;
* **subscripts** with integer constants and slices only (``part_px[:, 0]``, the leading constituent in file
  order).

Everything else (attributes, strings, lambdas, comprehensions, keyword arguments, ``__import__``, ...) raises
a :class:`ValueError` that names the offending construct.

Examples
--------
>>> import numpy as np
>>> ns = {"jet_pt": np.array([400.0, 600.0]), "jet_eta": np.zeros(2)}
>>> evaluate("(jet_pt > 500) & (abs(jet_eta) < 2)", ns)
array([False,  True])
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np

#: longest accepted expression, in characters
MAX_LENGTH = 2000


def _is_awkward(x) -> bool:
    return type(x).__module__.startswith("awkward")


def _ak():
    import awkward as ak

    return ak


def _where(cond, a, b):
    if any(_is_awkward(v) for v in (cond, a, b)):
        return _ak().where(cond, a, b)
    return np.where(cond, a, b)


def _clip(x, lo, hi):
    return np.minimum(np.maximum(x, lo), hi)


def _num(x):
    if _is_awkward(x):
        return _ak().to_numpy(_ak().num(x, axis=-1))
    x = np.asarray(x)
    return np.full(x.shape[:-1], x.shape[-1]) if x.ndim > 1 else np.ones(x.shape, dtype=np.int64)


def _reducer(name):
    def reduce(*args):
        if len(args) == 2 and name in ("max", "min"):
            return (np.maximum if name == "max" else np.minimum)(*args)
        if len(args) != 1:
            raise ValueError(
                f"{name}() takes one argument (or two for the elementwise max/min), got {len(args)}"
            )
        x = args[0]
        if _is_awkward(x):
            ak = _ak()
            if name == "mean":
                return ak.to_numpy(ak.fill_none(ak.mean(x, axis=-1), np.nan))
            return ak.to_numpy(getattr(ak, name)(x, axis=-1, mask_identity=False))
        x = np.asarray(x)
        if x.ndim == 0:
            return x
        return getattr(np, name)(x, axis=-1)

    return reduce


#: whitelisted functions: name -> (callable, allowed numbers of arguments)
FUNCTIONS: dict[str, tuple] = {
    **{
        name: (getattr(np, name), (1,))
        for name in (
            "sqrt",
            "log",
            "log10",
            "exp",
            "sin",
            "cos",
            "tan",
            "sinh",
            "cosh",
            "tanh",
            "arcsin",
            "arccos",
            "arctan",
            "arcsinh",
            "arccosh",
            "arctanh",
            "isfinite",
        )
    },
    "abs": (np.abs, (1,)),
    "arctan2": (np.arctan2, (2,)),
    "hypot": (np.hypot, (2,)),
    "minimum": (np.minimum, (2,)),
    "maximum": (np.maximum, (2,)),
    "where": (_where, (3,)),
    "clip": (_clip, (3,)),
    "num": (_num, (1,)),
    "sum": (_reducer("sum"), (1,)),
    "mean": (_reducer("mean"), (1,)),
    "max": (_reducer("max"), (1, 2)),
    "min": (_reducer("min"), (1, 2)),
}

_MODULE_PREFIXES = ("np", "numpy", "ak", "awkward")

_BINOPS = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
    ast.BitAnd: np.logical_and,
    ast.BitOr: np.logical_or,
}
_CMPOPS = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive, ast.Invert: np.logical_not, ast.Not: np.logical_not}


class Expr:
    """A parsed, validated expression. Build with :func:`parse`; evaluate with :meth:`evaluate`.

    Attributes
    ----------
    source : str
        The expression text.
    names : frozenset of str
        Variables the expression reads (function names excluded), e.g. to decide which branches to load.
    """

    def __init__(self, source: str):
        if not isinstance(source, str):
            raise ValueError(f"an expression must be a string, got {type(source).__name__}: {source!r}")
        if len(source) > MAX_LENGTH:
            raise ValueError(f"expression too long ({len(source)} > {MAX_LENGTH} characters)")
        self.source = source
        try:
            tree = ast.parse(source.strip(), mode="eval")
        except (SyntaxError, RecursionError, MemoryError, ValueError) as err:
            raise ValueError(f"invalid expression {source!r}: {err}") from None
        names: set[str] = set()
        try:
            self._check(tree.body, names)
        except RecursionError:
            raise ValueError(f"expression {source!r} is nested too deeply") from None
        self._tree = tree.body
        self.names = frozenset(names)

    def __repr__(self) -> str:
        return f"Expr({self.source!r})"

    # -- validation ------------------------------------------------------------------------------------------
    def _fail(self, node, what: str):
        raise ValueError(f"{what} is not allowed in expression {self.source!r}{_where_in(node)}")

    def _function_name(self, func) -> str:
        if isinstance(func, ast.Name):
            name = func.id
        elif (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in _MODULE_PREFIXES
        ):
            name = func.attr
        else:
            self._fail(func, f"calling {_describe(func)}")
        if name not in FUNCTIONS:
            raise ValueError(
                f"function {name!r} is not allowed in expression {self.source!r}; "
                f"allowed functions: {', '.join(sorted(FUNCTIONS))}"
            )
        return name

    def _check(self, node, names: set[str]) -> None:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or type(node.value) in (int, float):
                return
            self._fail(node, f"the constant {node.value!r}")
        elif isinstance(node, ast.Name):
            if node.id.startswith("__"):
                self._fail(node, f"the name {node.id!r}")
            names.add(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                self._fail(node, f"the operator {type(node.op).__name__}")
            self._check(node.left, names)
            self._check(node.right, names)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                self._fail(node, f"the operator {type(node.op).__name__}")
            self._check(node.operand, names)
        elif isinstance(node, ast.BoolOp):
            for value in node.values:
                self._check(value, names)
        elif isinstance(node, ast.Compare):
            if any(type(op) not in _CMPOPS for op in node.ops):
                self._fail(node, "the comparison 'in'/'is'")
            for value in (node.left, *node.comparators):
                self._check(value, names)
        elif isinstance(node, ast.Call):
            name = self._function_name(node.func)
            if node.keywords:
                self._fail(node, "a keyword argument")
            if any(isinstance(a, ast.Starred) for a in node.args):
                self._fail(node, "*args")
            if len(node.args) not in FUNCTIONS[name][1]:
                counts = " or ".join(map(str, FUNCTIONS[name][1]))
                raise ValueError(
                    f"{name}() takes {counts} argument(s), got {len(node.args)} in expression {self.source!r}"
                )
            for arg in node.args:
                self._check(arg, names)
        elif isinstance(node, ast.Subscript):
            self._check(node.value, names)
            self._check_index(node.slice)
        else:
            self._fail(node, _describe(node))

    def _check_index(self, node) -> None:
        if isinstance(node, ast.Tuple):
            for elt in node.elts:
                self._check_index(elt)
        elif isinstance(node, ast.Slice):
            for part in (node.lower, node.upper, node.step):
                if part is not None:
                    self._check_index(part)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            return
        elif (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) is int
        ):
            return
        else:
            self._fail(node, f"the index {_describe(node)} (only integer constants and slices)")

    # -- evaluation ------------------------------------------------------------------------------------------
    def evaluate(self, namespace: Mapping):
        """Evaluate on ``namespace`` (name -> numpy or awkward array); unknown names raise ValueError."""
        missing = sorted(n for n in self.names if n not in namespace)
        if missing:
            raise ValueError(
                f"unknown name(s) {', '.join(map(repr, missing))} in expression {self.source!r}; "
                f"available: {', '.join(sorted(namespace))}"
            )
        with np.errstate(all="ignore"):
            return self._eval(self._tree, namespace)

    def _eval(self, node, ns):
        if isinstance(node, ast.Constant):
            return np.float64(node.value) if not isinstance(node.value, bool) else np.bool_(node.value)
        if isinstance(node, ast.Name):
            return ns[node.id]
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](self._eval(node.left, ns), self._eval(node.right, ns))
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](self._eval(node.operand, ns))
        if isinstance(node, ast.BoolOp):
            op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            out = self._eval(node.values[0], ns)
            for value in node.values[1:]:
                out = op(out, self._eval(value, ns))
            return out
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, ns)
            out = None
            for op, comp in zip(node.ops, node.comparators):
                right = self._eval(comp, ns)
                part = _CMPOPS[type(op)](left, right)
                out = part if out is None else np.logical_and(out, part)
                left = right
            return out
        if isinstance(node, ast.Call):
            func = FUNCTIONS[node.func.id if isinstance(node.func, ast.Name) else node.func.attr][0]
            return func(*(self._eval(arg, ns) for arg in node.args))
        if isinstance(node, ast.Subscript):
            return self._eval(node.value, ns)[self._index(node.slice)]
        raise AssertionError(f"unvalidated node {ast.dump(node)}")  # pragma: no cover - _check rejects it

    def _index(self, node):
        if isinstance(node, ast.Tuple):
            return tuple(self._index(e) for e in node.elts)
        if isinstance(node, ast.Slice):
            return slice(
                *(None if p is None else self._index(p) for p in (node.lower, node.upper, node.step))
            )
        if isinstance(node, ast.UnaryOp):
            return -node.operand.value
        return node.value


def _describe(node) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.DictComp: "a comprehension",
        ast.SetComp: "a comprehension",
        ast.Dict: "a dict literal",
        ast.List: "a list literal",
        ast.Set: "a set literal",
        ast.Tuple: "a tuple",
        ast.IfExp: "a conditional expression (use where())",
        ast.NamedExpr: "an assignment",
        ast.JoinedStr: "an f-string",
        ast.Starred: "*args",
        ast.Await: "await",
        ast.Yield: "yield",
    }
    if isinstance(node, ast.Attribute):
        return f"attribute access '.{node.attr}'"
    if isinstance(node, ast.Constant):
        return repr(node.value)
    return kinds.get(type(node), type(node).__name__)


def _where_in(node) -> str:
    col = getattr(node, "col_offset", None)
    return f" (at column {col + 1})" if col is not None else ""


def parse(source: str) -> Expr:
    """Parse and validate ``source``; raises :class:`ValueError` on anything outside the whitelist."""
    return Expr(source)


def evaluate(source: str | Expr, namespace: Mapping):
    """Parse (if needed) and evaluate ``source`` on ``namespace``."""
    expr = source if isinstance(source, Expr) else Expr(source)
    return expr.evaluate(namespace)
