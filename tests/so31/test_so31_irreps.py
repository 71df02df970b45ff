import pickle

import numpy as np
import pytest
import torch

from lgae.so31 import Irrep, Irreps


def test_irrep_basics():
    r = Irrep(1, 1)
    assert r.dim == 4 and r.is_vector and not r.is_scalar
    assert Irrep(0, 0).is_scalar and Irrep(0, 0).dim == 1
    assert Irrep(2, 3).dim == 12
    assert (r.k, r.n) == (1, 1)
    assert str(Irrep(2, 0)) == "(2,0)" and repr(Irrep(2, 0)) == "Irrep(2, 0)"
    assert Irrep("(1,1)") == Irrep.parse(" ( 1 , 1 ) ") == Irrep((1, 1)) == r
    assert Irrep(r) is r
    assert Irrep(2, 1).conj() == Irrep(1, 2)
    assert Irrep(2, 2).spins == [0, 2, 4] and Irrep(3, 1).spins == [2, 4]
    assert Irrep(1, 1).is_tensorial and not Irrep(1, 0).is_tensorial
    assert Irrep(np.int64(2), 1.0) == Irrep(2, 1)  # integer-valued numbers are accepted
    assert isinstance(Irrep(2, 1.0).n, int)
    assert Irrep(torch.tensor(1), 2) == (1, 2)


def test_irrep_hash_order_and_tuple_compatibility():
    d = {Irrep(1, 1): "v"}
    assert d[(1, 1)] == "v"  # an Irrep is a (k, n) tuple
    assert hash(Irrep(1, 1)) == hash((1, 1))
    assert sorted([Irrep(1, 1), Irrep(0, 2), Irrep(0, 0), Irrep(1, 0)]) == [(0, 0), (0, 2), (1, 0), (1, 1)]
    assert Irrep(0, 2) < Irrep(1, 0)
    assert pickle.loads(pickle.dumps(Irrep(2, 1))) == Irrep(2, 1)
    assert type(pickle.loads(pickle.dumps(Irrep(2, 1)))) is Irrep
    with pytest.raises(AttributeError):
        Irrep(1, 1).k = 2


@pytest.mark.parametrize(
    "args, match",
    [
        ((-1, 0), "must be >= 0"),
        ((0, -2), "must be >= 0"),
        ((1.5, 0), "non-negative integer"),
        (("a", 0), "non-negative integer"),
        ((True, 1), "non-negative integer"),
        ((1, None), "cannot make an Irrep"),
        (("(1,a)",), "cannot parse"),
        (("1,1",), "cannot parse"),
        ((1 + 2j, 0), "non-negative integer"),
    ],
)
def test_irrep_bad_labels(args, match):
    with pytest.raises(ValueError, match=match):
        Irrep(*args)


def test_irreps_parse_print_and_iterate():
    x = Irreps("2x(0,0)+3x(1,1)")
    assert x.dim == 2 * 1 + 3 * 4 and x.num_irreps == 5
    assert list(x) == [(2, Irrep(0, 0)), (3, Irrep(1, 1))]
    assert str(x) == "2x(0,0)+3x(1,1)"
    assert Irreps(str(x)) == x
    assert Irreps("(1,1) + 2 x (0,0)") == Irreps([(1, Irrep(1, 1)), (2, Irrep(0, 0))])
    assert Irreps([(0, 0), (1, 1)]) == Irreps("1x(0,0)+1x(1,1)")  # bare (k, n) pairs are irreps
    assert Irreps([(2, (0, 0))]) == Irreps("2x(0,0)")  # (mul, irrep) pairs
    assert Irreps({(1, 1): 3}) == Irreps("3x(1,1)")
    assert Irreps(Irrep(2, 2)) == Irreps("1x(2,2)")
    assert Irreps("") == Irreps() and Irreps().dim == 0
    assert eval(repr(x), {"Irreps": Irreps}) == x


def test_irreps_algebra():
    x = Irreps("1x(1,1)+2x(0,0)+1x(1,1)+0x(2,2)")
    assert x.simplify() == Irreps("2x(0,0)+2x(1,1)")
    assert x.sort() == Irreps("2x(0,0)+1x(1,1)+1x(1,1)+0x(2,2)")
    assert x.count((1, 1)) == 2 and x.count(Irrep(2, 2)) == 0
    assert x.irreps() == [Irrep(0, 0), Irrep(1, 1), Irrep(2, 2)]
    assert Irreps("1x(0,0)") + "2x(1,1)" == Irreps("1x(0,0)+2x(1,1)")
    assert Irrep(0, 0) + Irrep(1, 1) == Irreps("1x(0,0)+1x(1,1)")
    assert 3 * Irrep(1, 1) == Irreps("3x(1,1)") and 2 * Irreps("1x(0,0)+2x(1,1)") == Irreps("2x(0,0)+4x(1,1)")
    assert x.as_dict() == {Irrep(0, 0): 2, Irrep(1, 1): 2}


@pytest.mark.parametrize(
    "bad", ["2x(1,1)+", "x(1,1)", "2*(1,1)", "2x(1,-1)", [(-1, Irrep(0, 0))], [(1.5, "(0,0)")], 3]
)
def test_irreps_bad_input(bad):
    with pytest.raises(ValueError):
        Irreps(bad)
