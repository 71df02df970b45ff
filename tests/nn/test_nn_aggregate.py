"""Latent aggregations (lgae.nn.aggregate)."""

import torch

from lgae.nn.aggregate import HardMinMax, MixAggregation, SoftMinMax, SumAggregation, build_aggregation
from lgae.so31 import apply_lorentz, lorentz_matrix, random_lorentz


def _feats(B=4, N=9, ts=2, tv=3, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(B, N, ts, dtype=dtype, generator=g)
    v = torch.randn(B, N, tv, 4, dtype=dtype, generator=g)
    mask = torch.arange(N)[None].expand(B, -1) < torch.tensor([N, N - 2, 4, 1])[:B, None]
    return s * mask[..., None], v * mask[..., None, None], mask


def test_soft_minmax_is_permutation_invariant_and_ignores_padding():
    agg = SoftMinMax(2, 3, temperature=0.3).double()
    s, v, mask = _feats()
    ls, lv = agg(s, v, mask)
    assert ls.shape == (4, 4) and lv.shape == (4, 6, 4)
    perm = torch.randperm(9)
    ls2, lv2 = agg(s[:, perm], v[:, perm], mask[:, perm])
    assert torch.allclose(ls, ls2, atol=1e-14) and torch.allclose(lv, lv2, atol=1e-14)
    s3, v3 = s.clone(), v.clone()
    s3[~mask] = 1e3  # garbage in padded slots changes nothing
    v3[~mask] = -7.0
    ls3, lv3 = agg(s3, v3, mask)
    assert torch.equal(ls, ls3) and torch.equal(lv, lv3)


def test_soft_minmax_is_continuous_and_equivariant():
    agg = SoftMinMax(1, 2, temperature=0.1).double()
    s, v, mask = _feats(ts=1, tv=2)
    ls, lv = agg(s, v, mask)
    # near-tie: tiny perturbations give tiny changes (the hard arg-max jumps)
    ls2, lv2 = agg(s + 1e-9, v * (1 + 1e-9), mask)
    assert (lv2 - lv).abs().max() < 1e-6 * lv.abs().max()
    ang, rap = random_lorentz((), max_rapidity=2.0, seed=0)
    L = lorentz_matrix(ang, rap)
    lsL, lvL = agg(s, apply_lorentz(L, v), mask)
    assert torch.allclose(lsL, ls, atol=1e-12)
    assert torch.allclose(lvL, apply_lorentz(L, lv), atol=1e-10 * float(lv.detach().abs().max()))


def test_soft_minmax_tends_to_hard_selection_at_low_temperature():
    s, v, mask = _feats(ts=1, tv=1)
    full = torch.ones_like(mask)
    soft = SoftMinMax(1, 1, temperature=1e-4, learn_temperature=False).double()
    hard = HardMinMax()
    ls, lv = soft(s, v, full)
    hs, hv = hard(s, v, full)
    assert torch.allclose(lv, hv, atol=1e-6)
    assert torch.allclose(ls[:, 1], hs[:, 1], atol=1e-6)  # soft min == min


def test_hard_minmax_reference_quirk_q5():
    # scalar "max" is the value of the largest square: {-5, 1, 3} -> -5 (lgae.md §4.8)
    s = torch.tensor([[[-5.0], [1.0], [3.0]]])
    v = torch.zeros(1, 3, 1, 4)
    ls, _ = HardMinMax()(s, v)
    assert ls.tolist() == [[-5.0, -5.0]]


def test_mix_and_sum_aggregations():
    s, v, mask = _feats()
    mix = MixAggregation(9, 2, 3, 1, 2, complex_weights=True).double()
    ls, lv = mix(s.to(torch.complex128), v.to(torch.complex128), mask)
    assert ls.shape == (4, 1) and lv.shape == (4, 2, 4)
    tot = SumAggregation()(s, v, mask)
    assert torch.allclose(tot[1], (v * mask[..., None, None]).sum(1))
    mean = SumAggregation(mean=True)(s, v, mask)
    assert torch.allclose(mean[0][3], s[3, 0])
    _, ns, nv = build_aggregation(
        "minmax",
        n_particles=9,
        tau_s_in=1,
        tau_v_in=2,
        tau_s=1,
        tau_v=2,
        complex_weights=False,
        faithful=False,
        temperature=0.1,
        key="mass",
    )
    assert (ns, nv) == (2, 4)


def test_soft_minmax_matches_explicit_softmax_sums():
    # both layouts against the definition, jet by jet: sum_i softmax(+-k_i / T) x_i over the valid particles
    from lgae.nn.layers import minkowski

    for key in ("mass", "learned"):
        torch.manual_seed(1)
        agg = SoftMinMax(2, 3, temperature=0.3, key=key).double()
        s, v, mask = _feats(seed=3)
        ls, lv = agg(s, v, mask)
        cs, cv = agg.forward_cm(s.permute(2, 0, 1), v.permute(2, 3, 0, 1), mask)
        assert torch.equal(cs, ls) and torch.equal(cv, lv)
        t = agg.log_t.exp().detach()
        keys_v = minkowski(v, v) if key == "mass" else agg.key_map(s).detach()
        keys_v = torch.sign(keys_v) * torch.log1p(keys_v.abs()) if key == "mass" else keys_v
        for b in range(s.shape[0]):
            m = mask[b]
            for c in range(2):
                k = s[b, m, c] / t[c]
                assert torch.allclose(ls[b, c], (torch.softmax(k, 0) * s[b, m, c]).sum(), atol=1e-12)
                assert torch.allclose(ls[b, 2 + c], (torch.softmax(-k, 0) * s[b, m, c]).sum(), atol=1e-12)
            for c in range(3):
                k = keys_v[b, m, c] / t[2 + c]
                hi = (torch.softmax(k, 0)[:, None] * v[b, m, c]).sum(0)
                lo = (torch.softmax(-k, 0)[:, None] * v[b, m, c]).sum(0)
                assert torch.allclose(lv[b, c], hi, atol=1e-12) and torch.allclose(
                    lv[b, 3 + c], lo, atol=1e-12
                )
