"""The restricted expression language of the data config (lgae.data.expr)."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest

from lgae.data.expr import evaluate, parse


@pytest.fixture
def ns():
    return {
        "jet_pt": np.array([400.0, 600.0, 800.0]),
        "jet_eta": np.array([0.5, -2.5, 1.0]),
        "n": np.array([1, 2, 3]),
        "part_px": ak.Array([[3.0, 1.0], [], [2.0, 5.0, 4.0]]),
        "part_py": ak.Array([[4.0, 0.0], [], [0.0, 0.0, 3.0]]),
    }


@pytest.mark.parametrize(
    "source, expected",
    [
        ("jet_pt * 2 - 100", [700.0, 1100.0, 1500.0]),
        ("jet_pt / 200 % 3", [2.0, 0.0, 1.0]),
        ("2 ** 3 + -jet_eta", [7.5, 10.5, 7.0]),
        ("jet_pt // 300", [1.0, 2.0, 2.0]),
        ("(jet_pt > 500) & (abs(jet_eta) < 2)", [False, False, True]),
        ("jet_pt > 500 and abs(jet_eta) < 2", [False, False, True]),
        ("(jet_pt < 500) | (jet_eta < -2)", [True, True, False]),
        ("jet_pt < 500 or not jet_eta < 0", [True, False, True]),
        ("~(jet_pt > 500)", [True, False, False]),
        ("500 <= jet_pt < 700", [False, True, False]),
        ("jet_pt == 600", [False, True, False]),
        ("jet_pt != 600", [True, False, True]),
        ("where(jet_eta > 0, jet_pt, -jet_pt)", [400.0, -600.0, 800.0]),
        ("maximum(jet_eta, 0) + minimum(jet_eta, 0)", [0.5, -2.5, 1.0]),
        ("clip(jet_eta, -1, 1)", [0.5, -1.0, 1.0]),
        ("np.hypot(3, 4) + numpy.sqrt(0) + 0 * n", [5.0, 5.0, 5.0]),
        ("log(exp(jet_eta))", [0.5, -2.5, 1.0]),
        ("arctan2(0, 1) + sin(0) + cos(0) + 0 * n", [1.0, 1.0, 1.0]),
        ("True & (n > 1)", [False, True, True]),
    ],
)
def test_per_jet_expressions(ns, source, expected):
    np.testing.assert_allclose(
        np.asarray(evaluate(source, ns), dtype=float), np.asarray(expected, dtype=float)
    )


def test_per_particle_and_reductions(ns):
    pt = evaluate("hypot(part_px, part_py)", ns)
    assert ak.to_list(pt) == [[5.0, 1.0], [], [2.0, 5.0, 5.0]]
    np.testing.assert_array_equal(evaluate("num(part_px)", ns), [2, 0, 3])
    np.testing.assert_array_equal(evaluate("ak.num(part_px)", ns), [2, 0, 3])
    np.testing.assert_allclose(evaluate("sum(hypot(part_px, part_py))", ns), [6.0, 0.0, 12.0])
    np.testing.assert_allclose(evaluate("max(part_px)", ns), [3.0, -np.inf, 5.0])
    np.testing.assert_allclose(evaluate("min(part_px)", ns), [1.0, np.inf, 2.0])
    np.testing.assert_allclose(evaluate("mean(part_px)", ns), [2.0, np.nan, 11 / 3])
    np.testing.assert_allclose(evaluate("max(jet_eta, 0)", ns), [0.5, 0.0, 1.0])  # two args: elementwise
    # a per-particle expression combined with a per-jet one broadcasts
    assert ak.to_list(evaluate("part_px / jet_pt * 100", ns)) == [[0.75, 0.25], [], [0.25, 0.625, 0.5]]
    assert ak.to_list(evaluate("part_px[:, :1]", ns)) == [[3.0], [], [2.0]]
    assert ak.to_list(evaluate("where(part_px > 2, 1, 0)", ns)) == [[1, 0], [], [0, 1, 1]]


def test_names_and_overflow(ns):
    assert parse("hypot(part_px, part_py) > jet_pt").names == {"part_px", "part_py", "jet_pt"}
    assert parse("np.sqrt(2)").names == frozenset()
    # numbers are float64: a tower of powers overflows to inf instead of building a huge integer
    assert evaluate("9 ** 9 ** 9 ** 9", ns) == np.inf


def test_unknown_name_lists_available(ns):
    with pytest.raises(ValueError, match=r"unknown name\(s\) 'jet_mass'.*available: .*jet_pt"):
        evaluate("jet_mass > 3", ns)


@pytest.mark.parametrize(
    "attack",
    [
        "__import__('os').system('echo hacked')",
        "__import__",
        "open('/etc/passwd')",
        "eval('1')",
        "exec('x = 1')",
        "getattr(jet_pt, 'shape')",
        "jet_pt.__class__",
        "jet_pt.__class__.__mro__[1].__subclasses__()",
        "().__class__.__bases__[0].__subclasses__()",
        "np.os.system('echo hacked')",
        "np.load('x.npy')",
        "ak.to_parquet(jet_pt, 'x')",
        "os.system('ls')",
        "jet_pt['__class__']",
        "jet_pt[jet_pt > 0]",
        "lambda: 1",
        "[x for x in jet_pt]",
        "{1: 2}",
        "'a string'",
        "f'{jet_pt}'",
        "(x := 1)",
        "jet_pt if jet_pt else 0",
        "sqrt(x=jet_pt)",
        "sqrt(*jet_pt)",
        "jet_pt is None",
        "1 in jet_pt",
        "jet_pt @ jet_pt",
        "jet_pt << 2",
        "sqrt(1, 2)",
        "where(1, 2)",
        "x = 1",
        "import os",
        "jet_pt; jet_eta",
        "(" * 500 + "1" + ")" * 500,
        "1 +" * 2000 + "1",
        "",
    ],
)
def test_attacks_and_unsupported_syntax_raise(ns, attack):
    with pytest.raises(ValueError):
        evaluate(attack, ns)


def test_non_string_rejected():
    with pytest.raises(ValueError, match="must be a string"):
        parse(42)
