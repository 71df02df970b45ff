"""Equivariant building blocks: CG products, mixing, the LMP level (general path vs maxdim-2 fast path)."""

import pytest
import torch

from lgae.nn.cg import SCALAR, VECTOR, CGProduct, cg_paths, irreps_upto
from lgae.nn.invariants import psi
from lgae.nn.layers import (
    MLP,
    EdgeData,
    EquivariantLinear,
    LMPLevel,
    RadialBasis,
    fast_to_general,
    general_to_fast,
    minkowski,
    minkowski_axis,
    radial_filters_chunked,
    shared_radial_filters,
)
from lgae.so31 import Irrep, apply_lorentz, lorentz_matrix, random_lorentz, rep_matrix


def test_irreps_and_paths():
    assert irreps_upto(2) == [Irrep(0, 0), Irrep(1, 1)]
    assert irreps_upto(3) == [Irrep(0, 0), Irrep(0, 2), Irrep(1, 1), Irrep(2, 0), Irrep(2, 2)]
    paths = cg_paths(irreps_upto(2), irreps_upto(2), 2)  # lgae.md §5.1: exactly four paths
    assert paths == {
        SCALAR: [(SCALAR, SCALAR), (VECTOR, VECTOR)],
        VECTOR: [(SCALAR, VECTOR), (VECTOR, SCALAR)],
    }
    p3 = cg_paths(irreps_upto(3), irreps_upto(3), 3)
    assert (Irrep(2, 0), Irrep(1, 1)) in p3[VECTOR] and (Irrep(2, 2), Irrep(1, 1)) in p3[VECTOR]
    assert (Irrep(2, 0), Irrep(0, 2)) in p3[Irrep(2, 2)]
    assert all(max(r) < 3 for r in p3)


def test_cg_product_closed_forms():
    # (1,1) x (1,1) -> (0,0) is <p, q> / 2 and (0,0) x (1,1) -> (1,1) is s v (lgae.md §2.2)
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 2, 5, dtype=torch.float64, generator=g)  # fast format (tau, B, N)
    v = torch.randn(3, 4, 2, 5, dtype=torch.float64, generator=g)  # (tau, 4, B, N)
    w = torch.randn(3, 4, 2, 5, dtype=torch.float64, generator=g)
    prod = CGProduct([SCALAR, VECTOR], [SCALAR, VECTOR], maxdim=2)
    x = fast_to_general(s, v)
    y = fast_to_general(s, w)
    out = prod(x, y, mode="self")
    ss, vv = out[SCALAR]
    assert torch.allclose(vv[..., 0].real, 0.5 * minkowski_axis(v, w, 1).permute(1, 2, 0), atol=1e-13)
    assert torch.allclose(minkowski_axis(v, w, 1), minkowski(v.movedim(1, -1), w.movedim(1, -1)), atol=1e-13)
    sv, _ = out[VECTOR]
    assert torch.allclose(general_to_fast({SCALAR: ss, VECTOR: sv}, real=True)[1], s[:, None] * w, atol=1e-13)


def _random_feats(irreps, B, N, tau, g):
    return {r: torch.randn(B, N, tau, r.dim, dtype=torch.complex128, generator=g) for r in irreps}


def _edge(B, N, pos, g, kind="shared", n_basis=6, mask=None):
    if mask is None:
        mask = torch.rand(B, N, N, generator=g) > 0.2
    if kind == "constant":
        return EdgeData(pos=pos, constant=True)
    if kind == "faithful_decoder":
        return EdgeData(pos=pos, constant=True, include_self=True, mask_before_linear=True)
    d2 = minkowski(pos[:, :, None] - pos[:, None], pos[:, :, None] - pos[:, None])
    u = psi(d2.real)[None]  # channel-first (F, B, N, N)
    if kind == "shared":
        basis = RadialBasis(1, n_basis, learnable=False).double()
        return EdgeData(pos=pos, mask=mask, phi=basis(u))
    if kind == "shared_unmasked":  # padded node features zero, self-edges dropped by the level
        basis = RadialBasis(1, n_basis, learnable=False).double()
        return EdgeData(pos=pos, phi=basis(u))
    if kind == "shared_self":  # filters keep the self-edges; the fast path subtracts them (the LGAE's form)
        basis = RadialBasis(1, n_basis, learnable=False).double()
        return EdgeData(pos=pos, phi=basis(u), phi_self=basis(u.diagonal(0, -2, -1)))
    return EdgeData(pos=pos, mask=mask, u=u, mask_before_linear=(kind == "basis_q1"))


@pytest.mark.parametrize("complex_weights", [False, True])
@pytest.mark.parametrize(
    "kind", ["shared", "shared_unmasked", "shared_self", "basis", "basis_q1", "constant", "faithful_decoder"]
)
def test_fast_path_equals_general_path(complex_weights, kind):
    g = torch.Generator().manual_seed(1)
    B, N, tau = 3, 7, 3
    radial = {"constant": "constant"}.get(kind, "shared" if kind.startswith("shared") else "basis")
    torch.manual_seed(0)
    lvl = LMPLevel(
        tau,
        4,
        maxdim=2,
        complex_weights=complex_weights,
        radial=radial,
        n_basis=7 if radial == "shared" else 6,  # a fixed shared basis of 6 bells has 6 + 1 functions
        mlp_width=2,
        mlp_depth=2,
        residual=kind != "basis_q1",
        z0=(1 + 1j) if complex_weights else 1.0,
        msg_norm=3.0,
    ).double()
    with torch.no_grad():  # make the zero-initialised MLP output layer matter
        for prm in lvl.parameters():
            prm.add_(0.1 * torch.randn(prm.shape, dtype=prm.dtype, generator=g))
    node_mask = torch.rand(B, N, generator=g) > 0.2
    s = torch.randn(tau, B, N, dtype=torch.float64, generator=g) * node_mask  # fast format, padding zero
    v = torch.randn(tau, 4, B, N, dtype=torch.float64, generator=g) * node_mask  # (tau, 4, B, N)
    pos = torch.randn(B, N, 4, dtype=torch.float64, generator=g)
    edge = _edge(B, N, pos, g, kind)
    if kind == "shared_self":  # the filters, as the LGAE hands them to its levels
        (edge,) = shared_radial_filters([lvl], edge)
        assert edge.rho_self is not None
    sf, vf = lvl.forward_fast(s, v, edge, node_mask)
    out = lvl.forward_general(fast_to_general(s, v), edge, node_mask)
    sg, vg = general_to_fast(out, real=not complex_weights)
    assert torch.allclose(sf, sg, rtol=0, atol=1e-10 * float(sf.detach().abs().max()))
    assert torch.allclose(vf, vg, rtol=0, atol=1e-10 * float(vf.detach().abs().max()))
    assert (vf[:, :, ~node_mask] == 0).all()


def _lmp_general_outputs(lvl, feats, edge):
    return lvl.forward_general(feats, edge, None)


@pytest.mark.parametrize("maxdim,complex_weights", [(2, False), (3, False), (3, True)])
def test_general_level_is_equivariant(maxdim, complex_weights):
    # D^(k,n)(Lambda) on every irrep of the features, Lambda on the edge positions
    g = torch.Generator().manual_seed(2)
    B, N, tau = 2, 5, 2
    torch.manual_seed(0)
    lvl = LMPLevel(
        tau,
        3,
        maxdim=maxdim,
        complex_weights=complex_weights,
        radial="basis",
        n_basis=4,
        mlp_width=2,
        mlp_depth=2,
    ).double()
    feats = _random_feats(irreps_upto(maxdim), B, N, tau, g)
    pos = torch.randn(B, N, 4, dtype=torch.float64, generator=g)
    mask = torch.ones(B, N, N, dtype=torch.bool)
    d2 = minkowski(pos[:, :, None] - pos[:, None], pos[:, :, None] - pos[:, None])
    ang, rap = random_lorentz((), max_rapidity=1.0, seed=3)
    L = lorentz_matrix(ang, rap)
    edge = EdgeData(pos=pos, mask=mask, u=psi(d2)[None])
    edge_t = EdgeData(pos=apply_lorentz(L, pos), mask=mask, u=psi(d2)[None])  # u is invariant
    D = {r: rep_matrix(r, ang, rap) for r in irreps_upto(maxdim)}
    out = lvl.forward_general(feats, edge, None)
    feats_t = {r: x @ D[r].T for r, x in feats.items()}
    out_t = lvl.forward_general(feats_t, edge_t, None)
    for r in out:
        expect = out[r] @ D[r].T
        assert torch.allclose(out_t[r], expect, atol=1e-10 * float(expect.detach().abs().max())), r


def test_fast_level_is_equivariant_float64():
    g = torch.Generator().manual_seed(4)
    B, N, tau = 4, 9, 3
    lvl = LMPLevel(tau, tau, maxdim=2, radial="basis", n_basis=5, mlp_width=2, mlp_depth=2).double()
    s = torch.randn(tau, B, N, dtype=torch.float64, generator=g)
    v = torch.randn(tau, 4, B, N, dtype=torch.float64, generator=g)  # component-major
    pos = torch.randn(B, N, 4, dtype=torch.float64, generator=g)
    mask = torch.ones(B, N, N, dtype=torch.bool)
    d2 = minkowski(pos[:, :, None] - pos[:, None], pos[:, :, None] - pos[:, None])
    ang, rap = random_lorentz((), max_rapidity=2.0, seed=5)
    L = lorentz_matrix(ang, rap)

    def boost_cm(x):  # Lambda on the component axis 1
        return apply_lorentz(L, x.movedim(1, -1)).movedim(-1, 1)

    so, vo = lvl.forward_fast(s, v, EdgeData(pos=pos, mask=mask, u=psi(d2)[None]))
    st, vt = lvl.forward_fast(s, boost_cm(v), EdgeData(pos=apply_lorentz(L, pos), mask=mask, u=psi(d2)[None]))
    assert torch.allclose(st, so, atol=1e-10 * float(so.detach().abs().max()))
    expect = boost_cm(vo)
    assert torch.allclose(vt, expect, atol=1e-10 * float(expect.detach().abs().max()))


def test_masked_edges_carry_nothing_but_reference_quirk_keeps_the_bias():
    g = torch.Generator().manual_seed(6)
    B, N, tau = 2, 4, 2
    pos = torch.randn(B, N, 4, dtype=torch.float64, generator=g)
    mask = torch.zeros(B, N, N, dtype=torch.bool)
    u = torch.randn(1, B, N, N, dtype=torch.float64, generator=g)
    lvl = LMPLevel(tau, tau, radial="basis", n_basis=3).double()
    r0, r1 = lvl.radial_filters(EdgeData(pos=pos, mask=mask, u=u))
    assert (r0 == 0).all() and (r1 == 0).all()
    q0, _ = lvl.radial_filters(EdgeData(pos=pos, mask=mask, u=u, mask_before_linear=True))
    assert torch.allclose(q0, lvl.radial.bias[:tau, None, None, None].expand_as(q0))


def test_equivariant_linear_and_mlp_shapes():
    lin = EquivariantLinear({SCALAR: 3, VECTOR: 2}, {SCALAR: 5, VECTOR: 4}, complex_weights=True)
    x = torch.randn(2, 7, 2, 4)
    y = lin.mix(VECTOR, x)
    assert y.shape == (2, 7, 4, 4) and y.is_complex()
    assert sum(p.numel() for p in lin.parameters()) == 2 * (5 * 3 + 4 * 2)  # complex weights count 2
    mlp = MLP(4, 24, 4, depth=6)
    assert (
        len([m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]) == 7
    )  # LGN: depth hidden layers + 1


def test_radial_basis_forms():
    u = torch.linspace(-3, 3, 11)[None]  # channel-first (F, ...)
    b = RadialBasis(1, 8)
    phi = b(u)
    assert phi.shape == (8, 11) and (phi > 0).all() and (phi <= 1).all()
    fixed = RadialBasis(1, 8, learnable=False)
    assert fixed.dim == 9 and not list(fixed.parameters())
    assert torch.allclose(fixed(u)[:8], phi.detach()) and torch.equal(fixed(u)[8], torch.ones(11))
    ref = RadialBasis(1, 20, centered=False)
    assert ref(u).shape == (20, 11) and ref.mu is None
    two = RadialBasis(2, 5)
    assert two(torch.randn(2, 3, 4)).shape == (10, 3, 4)


@pytest.mark.parametrize("chunk_edges", [1, 2 * 25, 3 * 25, 10**6])
def test_radial_filters_chunked_equal_the_whole_product(chunk_edges):
    # 7 jets of 5 nodes in chunks of 1, 2, 3 (uneven last chunk) or all jets: the same columns as w @ phi
    g = torch.Generator().manual_seed(0)
    basis = RadialBasis(1, 20, learnable=False).double()
    u = psi(torch.randn(1, 7, 5, 5, dtype=torch.float64, generator=g) * 3)
    w = torch.randn(6, 21, dtype=torch.float64, generator=g)
    ref = (w @ basis(u).flatten(1)).view(6, 7, 5, 5)
    got = radial_filters_chunked(w, basis, u, chunk_edges=chunk_edges)
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, rtol=1e-15, atol=1e-15)


def test_shared_filters_from_a_basis_module_match_a_given_basis():
    # EdgeData(basis=, u=) (chunked without autograd, whole with it) gives the filters of EdgeData(phi=)
    g = torch.Generator().manual_seed(1)
    lvl = LMPLevel(3, 3, radial="shared", n_basis=21).double()
    basis = RadialBasis(1, 20, learnable=False).double()
    pos = torch.randn(4, 6, 4, dtype=torch.float64, generator=g)
    u = psi(torch.randn(1, 4, 6, 6, dtype=torch.float64, generator=g))
    u = 0.5 * (u + u.transpose(-1, -2))
    phi_self = basis(u.diagonal(0, -2, -1).contiguous())
    (ref,) = shared_radial_filters([lvl], EdgeData(pos=pos, phi=basis(u), phi_self=phi_self))
    (whole,) = shared_radial_filters([lvl], EdgeData(pos=pos, u=u, basis=basis, phi_self=phi_self))
    with torch.no_grad():
        (chunked,) = shared_radial_filters([lvl], EdgeData(pos=pos, u=u, basis=basis, phi_self=phi_self))
    for e in (whole, chunked):
        torch.testing.assert_close(e.rho, ref.rho, rtol=1e-14, atol=1e-14)
        torch.testing.assert_close(e.rho_self, ref.rho_self, rtol=1e-14, atol=1e-14)
