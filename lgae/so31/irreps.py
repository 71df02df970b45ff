"""Irrep labels ``(k, n)`` of SO+(3,1) / SL(2,C) and multisets of them.

Labels follow LGN: integers ``k, n >= 0`` meaning spins ``(k/2, n/2)``, so the 4-vector is ``(1, 1)`` and the
scalar ``(0, 0)``; ``dim == (k + 1) * (n + 1)``. An :class:`Irrep` *is* a tuple ``(k, n)`` (a tuple subclass),
so it is hashable, ordered lexicographically by ``(k, n)`` and compares equal to the plain tuple:
``features[(1, 1)]`` and ``features[Irrep(1, 1)]`` hit the same dict entry.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Iterable

_IRREP_RE = re.compile(r"^\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)$")
_TERM_RE = re.compile(r"^(?:(\d+)\s*x\s*)?(\(.*\))$")


def _label(value, which: str) -> int:
    """Validate one label: a non-negative integer (bools and non-integral numbers are rejected)."""
    if not isinstance(value, bool | numbers.Real) and hasattr(value, "__index__"):
        try:
            value = value.__index__()  # e.g. 0-dim integer tensors
        except (TypeError, RuntimeError):
            pass
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(
            f"irrep label {which} must be a non-negative integer (LGN labels (k, n) mean spins (k/2, n/2)); "
            f"got {value!r} of type {type(value).__name__}"
        )
    if not isinstance(value, numbers.Integral):
        if not float(value).is_integer():
            raise ValueError(
                f"irrep label {which} must be a non-negative integer (LGN labels (k, n) mean spins "
                f"(k/2, n/2), so spin 1/2 is label 1); got {value!r}"
            )
    value = int(value)
    if value < 0:
        raise ValueError(f"irrep label {which} must be >= 0; got {value}")
    return value


class Irrep(tuple):
    """An irrep ``(k, n)`` of SL(2,C), i.e. spins ``(k/2, n/2)``; a true SO+(3,1) irrep iff ``k + n`` is even.

    Construct with ``Irrep(k, n)``, ``Irrep((k, n))``, ``Irrep("(k,n)")`` or ``Irrep(other_irrep)``. Labels
    must be non-negative integers (integer-valued floats are accepted and converted); anything else raises
    ``ValueError``.
    """

    __slots__ = ()

    def __new__(cls, k, n=None):
        if n is None:
            if isinstance(k, Irrep):
                return k
            if isinstance(k, str):
                return cls.parse(k)
            if isinstance(k, tuple | list) and len(k) == 2:
                k, n = k
            else:
                raise ValueError(
                    f"cannot make an Irrep from {k!r}; use Irrep(k, n), Irrep((k, n)) or Irrep('(k,n)')"
                )
        return tuple.__new__(cls, (_label(k, "k"), _label(n, "n")))

    @classmethod
    def parse(cls, text: str) -> Irrep:
        """Parse ``"(k,n)"`` (spaces allowed)."""
        m = _IRREP_RE.match(text.strip())
        if not m:
            raise ValueError(
                f"cannot parse irrep {text!r}; expected '(k,n)' with integers k, n >= 0, e.g. '(1,1)'"
            )
        try:
            k, n = (int(s) for s in m.groups())
        except ValueError:
            raise ValueError(f"cannot parse irrep {text!r}: labels must be integers, e.g. '(1,1)'") from None
        return cls(k, n)

    def __getnewargs__(self):  # pickling / copy
        return tuple(self)

    @property
    def k(self) -> int:
        """Holomorphic label (spin ``k/2``)."""
        return self[0]

    @property
    def n(self) -> int:
        """Antiholomorphic label (spin ``n/2``)."""
        return self[1]

    @property
    def dim(self) -> int:
        """``(k + 1) * (n + 1)``."""
        return (self[0] + 1) * (self[1] + 1)

    @property
    def is_scalar(self) -> bool:
        return self[0] == 0 and self[1] == 0

    @property
    def is_vector(self) -> bool:
        """True for ``(1, 1)``, the 4-vector."""
        return self[0] == 1 and self[1] == 1

    @property
    def is_tensorial(self) -> bool:
        """True iff ``k + n`` is even (a representation of SO+(3,1), not only of its double cover)."""
        return (self[0] + self[1]) % 2 == 0

    @property
    def spins(self) -> list:
        """Doubled rotation spins ``2l`` in the canonical order: ``|k - n|, |k - n| + 2, ..., k + n``."""
        return list(range(abs(self[0] - self[1]), self[0] + self[1] + 1, 2))

    def conj(self) -> Irrep:
        """The complex-conjugate irrep ``(n, k)``."""
        return Irrep(self[1], self[0])

    def __str__(self) -> str:
        return f"({self[0]},{self[1]})"

    def __repr__(self) -> str:
        return f"Irrep({self[0]}, {self[1]})"

    def __mul__(self, other):  # 3 * Irrep -> Irreps; avoid tuple repetition semantics
        if isinstance(other, numbers.Integral) and not isinstance(other, bool):
            return Irreps([(int(other), self)])
        return NotImplemented

    __rmul__ = __mul__

    def __add__(self, other):
        return Irreps(self) + Irreps(other)

    def __radd__(self, other):
        return Irreps(other) + Irreps(self)


def _parse_irreps(text: str) -> list[tuple[int, Irrep]]:
    text = text.strip()
    if not text:
        return []
    out = []
    for term in text.split("+"):
        m = _TERM_RE.match(term.strip())
        if not m:
            raise ValueError(
                f"cannot parse irreps term {term.strip()!r} in {text!r}; expected e.g. '2x(0,0)+3x(1,1)'"
            )
        mul = int(m.group(1)) if m.group(1) is not None else 1
        out.append((mul, Irrep.parse(m.group(2))))
    return out


class Irreps(tuple):
    """A multiset of irreps, stored as an ordered tuple of ``(mul, Irrep)`` pairs (like e3nn's ``Irreps``).

    ``Irreps("2x(0,0)+3x(1,1)")``, ``Irreps([(2, (0, 0)), (3, Irrep(1, 1))])``, ``Irreps(Irrep(1, 1))`` and
    ``Irreps({(0, 0): 2, (1, 1): 3})`` all work (a bare ``(k, n)`` pair of numbers in a list is one irrep, a
    pair whose second entry is an irrep is ``(mul, irrep)``). Iterating yields ``(mul, irrep)``; ``str``
    prints the parseable form. The order is kept as given; :meth:`sort` and :meth:`simplify` canonicalise it.
    """

    __slots__ = ()

    def __new__(cls, items=()):
        if isinstance(items, Irreps):
            return items
        if isinstance(items, str):
            pairs = _parse_irreps(items)
        elif isinstance(items, Irrep):
            pairs = [(1, items)]
        elif isinstance(items, dict):
            pairs = [(m, Irrep(r)) for r, m in items.items()]
        elif isinstance(items, Iterable):
            pairs = []
            for item in items:
                if isinstance(item, Irrep | str):
                    pairs.append((1, Irrep(item)))
                elif (
                    isinstance(item, tuple | list) and len(item) == 2 and isinstance(item[1], numbers.Number)
                ):
                    pairs.append((1, Irrep(item)))  # a bare (k, n) label pair
                elif isinstance(item, tuple | list) and len(item) == 2:
                    pairs.append((item[0], Irrep(item[1])))
                else:
                    raise ValueError(
                        f"cannot read {item!r} as an Irreps entry; use (mul, irrep) pairs or Irrep objects"
                    )
        else:
            raise ValueError(f"cannot make Irreps from {items!r}")
        checked = []
        for mul, irrep in pairs:
            if isinstance(mul, bool) or not isinstance(mul, numbers.Integral) or mul < 0:
                raise ValueError(f"multiplicity of {irrep} must be an integer >= 0; got {mul!r}")
            checked.append((int(mul), irrep))
        return tuple.__new__(cls, checked)

    @property
    def dim(self) -> int:
        """Total dimension ``sum(mul * irrep.dim)``."""
        return sum(mul * r.dim for mul, r in self)

    @property
    def num_irreps(self) -> int:
        """Total multiplicity ``sum(mul)``."""
        return sum(mul for mul, _ in self)

    def count(self, irrep) -> int:  # type: ignore[override]
        """Total multiplicity of ``irrep``."""
        irrep = Irrep(irrep)
        return sum(mul for mul, r in self if r == irrep)

    def irreps(self) -> list[Irrep]:
        """The distinct irreps, sorted."""
        return sorted({r for _, r in self})

    def sort(self) -> Irreps:
        """Stable sort by irrep (does not merge repeated irreps)."""
        return Irreps(sorted(self, key=lambda pair: pair[1]))

    def simplify(self) -> Irreps:
        """Canonical form: sorted by irrep, equal irreps merged, zero multiplicities dropped."""
        merged: dict[Irrep, int] = {}
        for mul, r in self:
            merged[r] = merged.get(r, 0) + mul
        return Irreps([(m, r) for r, m in sorted(merged.items()) if m > 0])

    def as_dict(self) -> dict[Irrep, int]:
        """``{irrep: total multiplicity}`` (the LGN ``GTau`` layout), sorted by irrep."""
        return {r: m for m, r in self.simplify()}

    def __add__(self, other):
        return Irreps(tuple(self) + tuple(Irreps(other)))

    def __radd__(self, other):
        return Irreps(other) + self

    def __mul__(self, other):
        if isinstance(other, numbers.Integral) and not isinstance(other, bool):
            return Irreps([(mul * int(other), r) for mul, r in self])
        return NotImplemented

    __rmul__ = __mul__

    def __str__(self) -> str:
        return "+".join(f"{mul}x{r}" for mul, r in self)

    def __repr__(self) -> str:
        return f"Irreps({str(self)!r})"
