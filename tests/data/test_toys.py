"""Toy datasets for symmetry discovery: shapes, determinism, standardisation, and the physics they promise."""

import json
import math

import numpy as np
import pytest

from lgae._validate import ConfigError
from lgae.data import toys
from lgae.data.toys import TOYS, make_toy, read_toy, write_toy

META_KEYS = {
    "feature_names",
    "intrinsic_dim",
    "description",
    "generator",
    "standardised",
    "mean",
    "std",
    "dropped",
    "params",
    "dof",
    "name",
    "n",
    "seed",
}
FAST = {"pp_dimuon": {"generator": "lo"}}


@pytest.mark.parametrize("name", sorted(TOYS))
def test_every_toy_shape_meta_and_determinism(name):
    kw = FAST.get(name, {})
    x, meta = make_toy(name, 500, 3, **kw)
    assert x.dtype == np.float64 and x.shape == (500, len(meta["feature_names"]))
    assert META_KEYS <= set(meta)
    json.dumps(meta)  # JSON-serialisable
    x2, meta2 = make_toy(name, 500, 3, **kw)
    np.testing.assert_array_equal(x, x2)
    assert meta == meta2
    assert not np.array_equal(x, make_toy(name, 500, 4, **kw)[0])
    if meta["standardised"]:
        np.testing.assert_allclose(x.mean(0), 0, atol=1e-9)
        np.testing.assert_allclose(x.std(0), 1, atol=1e-9)


def test_standardisation_is_recorded_and_invertible():
    raw, _ = make_toy("annulus", 1000, 0, standardise=False)
    x, meta = make_toy("annulus", 1000, 0)
    np.testing.assert_allclose(x * meta["std"] + np.asarray(meta["mean"]), raw, atol=1e-12)


def test_plane_circle_annulus_geometry():
    x, meta = make_toy("plane", 2000, 0, standardise=False)
    assert meta["intrinsic_dim"] == 2 and np.abs(x).max() <= 1.0
    x, meta = make_toy("circle", 2000, 0, standardise=False, radius=2.0)
    np.testing.assert_allclose(np.hypot(x[:, 0], x[:, 1]), 2.0, rtol=1e-12)
    assert meta["intrinsic_dim"] == 1
    r = np.hypot(*make_toy("circle", 2000, 0, standardise=False, noise=0.05)[0].T)
    assert 0.03 < r.std() < 0.07
    r = np.hypot(*make_toy("annulus", 2000, 0, standardise=False, r_min=0.5, r_max=1.5)[0].T)
    assert r.min() >= 0.5 and r.max() <= 1.5 and r.std() > 0.25


def test_gaussian_keeps_its_variances():
    lam = [4.0, 1.0, 0.25]
    x, meta = make_toy("gaussian", 40000, 1, variances=lam)
    assert not meta["standardised"]
    np.testing.assert_allclose(x.var(0), lam, rtol=0.03)
    x, meta = make_toy("gaussian", 40000, 1, variances=lam, rotate=True)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.cov(x.T))[::-1], lam, rtol=0.03)
    v = np.asarray(meta["eigenvectors"])
    np.testing.assert_allclose(v @ v.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.var(x @ v.T, axis=0), lam, rtol=0.03)


def test_ee_mumu_kinematics_and_dropped_energies():
    sqrt_s = 91.1876
    x, meta = make_toy("ee_mumu", 20000, 0)
    assert meta["dropped"] == ["mum_E", "mup_E"] and meta["intrinsic_dim"] == 2 and x.shape[1] == 6
    raw, meta_raw = make_toy("ee_mumu", 20000, 0, standardise=False)
    assert meta_raw["dropped"] == ["mum_E", "mup_E"]  # constant features go either way
    names = meta_raw["feature_names"]
    mum = raw[:, [names.index(f"mum_{c}") for c in ("px", "py", "pz")]]
    mup = raw[:, [names.index(f"mup_{c}") for c in ("px", "py", "pz")]]
    np.testing.assert_allclose(mum + mup, 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(mum, axis=1), sqrt_s / 2, rtol=1e-12)
    c = mum[:, 2] / np.linalg.norm(mum, axis=1)
    assert abs(np.mean(c**2) - 0.4) < 0.01  # 1 + cos^2: <cos^2> = 2/5
    assert abs(np.mean(c)) < 0.02
    phi = np.arctan2(mum[:, 1], mum[:, 0])
    assert abs(np.mean(np.cos(phi))) < 0.02 and abs(np.mean(np.sin(phi))) < 0.02


def test_ee_mumu_forward_backward_asymmetry():
    raw, meta = make_toy("ee_mumu", 40000, 2, standardise=False, a_fb=0.3)
    names = meta["feature_names"]
    pz = raw[:, names.index("mum_pz")]
    afb = (np.sum(pz > 0) - np.sum(pz < 0)) / len(pz)
    assert abs(afb - 0.3) < 0.015
    with pytest.raises(ConfigError, match="A_FB"):
        make_toy("ee_mumu", 10, 0, a_fb=0.9)


def _dimuon(raw):
    mum, mup = raw[:, :4], raw[:, 4:]
    tot = mum + mup
    m = np.sqrt(tot[:, 0] ** 2 - (tot[:, 1:] ** 2).sum(1))
    eta = np.arcsinh(raw[:, [3, 7]] / np.hypot(raw[:, [1, 5]], raw[:, [2, 6]]))
    return mum, mup, tot, m, eta


@pytest.mark.parametrize("generator", ["lo", "pythia"])
def test_pp_dimuon_lo_kinematics(generator):
    if generator == "pythia" and not toys.pythia_available():
        pytest.skip("pythia8mc not installed")
    raw, meta = make_toy("pp_dimuon", 400, 5, standardise=False, generator=generator)
    assert meta["generator"] == ("pythia" if generator == "pythia" else "LO sampler")
    assert meta["intrinsic_dim"] == 4 and meta["dropped"] == [] and raw.shape == (400, 8)
    mum, mup, tot, m, eta = _dimuon(raw)
    np.testing.assert_allclose(tot[:, 1:3], 0, atol=1e-6 * raw.max())  # no dimuon pT at LO
    mu_mass = 0.10566 if generator == "pythia" else 0.0
    for p in (mum, mup):
        np.testing.assert_allclose(
            p[:, 0] ** 2 - (p[:, 1:] ** 2).sum(1), mu_mass**2, atol=1e-6 * p[:, 0].max() ** 2
        )
    assert m.min() > 60 and m.max() < 120 and np.abs(eta).max() < 2.5
    assert abs(np.median(m) - 91.19) < 1.5


def test_pp_dimuon_lo_decay_and_rapidity_shapes():
    from lgae.data.toys import generator_variables

    x, meta = make_toy("pp_dimuon", 20000, 0, generator="lo", eta_max=None)
    v = generator_variables(x, meta)
    assert abs(np.mean(v["cos theta*"] ** 2) - 0.4) < 0.01
    assert abs(np.mean(v["Y"])) < 0.05 and 1.2 < np.std(v["Y"]) < 2.4
    assert np.abs(v["Y"]).max() < math.log(13000 / 60)


def test_pp_dimuon_smearing_and_isr_add_degrees_of_freedom():
    raw, meta = make_toy("pp_dimuon", 300, 1, standardise=False, generator="lo", smear=0.02)
    assert meta["intrinsic_dim"] == 6
    assert np.abs(raw[:, 1] + raw[:, 5]).max() > 0.1  # pT balance broken
    with pytest.raises(ConfigError, match="isr"):
        make_toy("pp_dimuon", 10, 0, generator="lo", isr=True)
    if toys.pythia_available():
        raw, meta = make_toy("pp_dimuon", 200, 1, standardise=False, isr=True)
        assert meta["generator"] == "pythia" and meta["intrinsic_dim"] == 6
        assert np.hypot(raw[:, 1] + raw[:, 5], raw[:, 2] + raw[:, 6]).max() > 1.0  # ISR recoil


def test_write_and_read_toy_roundtrip(tmp_path):
    path = write_toy("circle", 100, 7, tmp_path / "sub" / "c", noise=0.01)
    assert path == tmp_path / "sub" / "c.npz" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["c.npz"]  # no temporary file left
    x, meta = read_toy(path)
    x0, meta0 = make_toy("circle", 100, 7, noise=0.01)
    np.testing.assert_array_equal(x, x0)
    assert meta == meta0 and meta["params"]["noise"] == 0.01
    with np.load(path) as f:
        assert list(f["feature_names"]) == ["x1", "x2"]


def test_bad_requests_are_clean_errors():
    with pytest.raises(ConfigError, match="circle"):
        make_toy("circel", 10, 0)
    with pytest.raises(ConfigError, match="radius"):
        make_toy("circle", 10, 0, radios=2.0)
    with pytest.raises(ConfigError, match="n must be"):
        make_toy("plane", 1, 0)
    with pytest.raises(ConfigError):
        make_toy("pp_dimuon", 10, 0, generator="herwig")
