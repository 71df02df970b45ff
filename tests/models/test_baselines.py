"""Baseline autoencoders (vae, gnnae-jl, gnnae-pl, cnnae): shapes, masking, symmetry, overfitting, configs.

Fast by design: small widths, a handful of synthetic jets, one thread.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from lgae._validate import ConfigError
from lgae.models import JetAutoencoder, build_model, model_config_keys
from lgae.nn.features import from_relative_coordinates, pt_eta_phi, relative_coordinates

torch.set_num_threads(1)

N = 12  # particle slots in the tests

SMALL = {
    "vae": {"n_particles": N, "latent_dim": 4, "hidden": [32, 16], "beta": 1e-3},
    "gnnae-jl": {
        "n_particles": N,
        "latent_dim": 6,
        "node_sizes": [8, 6],
        "edge_sizes": [[12, 8], [8, 8]],
    },
    "gnnae-pl": {
        "n_particles": N,
        "latent_node_dim": 2,
        "node_sizes": [8, 6],
        "edge_sizes": [[12, 8], [8, 8]],
    },
    "cnnae": {"latent_dim": 8, "channels": 4, "n_pixels": 16},
}
MODELS = list(SMALL)
CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def synthetic_jets(n_jets: int, n_slots: int = N, seed: int = 0, n_min: int = 4):
    """Massless particles around a random jet axis, pT ~ 1/rank, ~1 TeV per jet, pT-ordered, zero-padded."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    eta0 = torch.rand(n_jets, 1, generator=g, dtype=f64) * 3 - 1.5
    phi0 = (torch.rand(n_jets, 1, generator=g, dtype=f64) * 2 - 1) * math.pi
    n = torch.randint(n_min, n_slots + 1, (n_jets,), generator=g)
    mask = torch.arange(n_slots)[None] < n[:, None]
    rank = torch.arange(1, n_slots + 1, dtype=f64)[None]
    pt = mask / rank
    pt = pt / pt.sum(1, keepdim=True) * 1000 * (0.8 + 0.4 * torch.rand(n_jets, 1, generator=g, dtype=f64))
    eta = eta0 + 0.15 * torch.randn(n_jets, n_slots, generator=g, dtype=f64)
    phi = phi0 + 0.15 * torch.randn(n_jets, n_slots, generator=g, dtype=f64)
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    p4 = torch.stack([torch.sqrt(px**2 + py**2 + pz**2), px, py, pz], -1) * mask[..., None]
    return p4, mask


def make(name: str, seed: int = 0, **over) -> JetAutoencoder:
    torch.manual_seed(seed)
    return build_model(name, **{**SMALL[name], **over}).eval()


def close(a, b, tol=1e-5):
    if a is None or b is None:
        return a is None and b is None
    return torch.allclose(a, b, atol=tol, rtol=tol)


@pytest.fixture(scope="module")
def jets():
    return synthetic_jets(16)


# -- construction, shapes, interface -------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_shapes_and_interface(name, jets):
    p4, mask = jets
    model = make(name)
    assert isinstance(model, JetAutoencoder) and model.name == name
    out = model(p4, mask)
    B = p4.shape[0]
    if name == "cnnae":
        assert out.p4 is None
        assert out.recon.shape == out.target.shape == (B, 16, 16)
        assert torch.allclose(out.recon.sum((1, 2)), torch.ones(B), atol=1e-5)  # softmax output
        assert torch.allclose(out.target.sum((1, 2)), torch.ones(B), atol=1e-5)  # normalised images
        assert out.latent["z"].shape == (B, 8)
    else:
        assert out.recon.shape == out.target.shape == (B, N, 3)
        assert out.p4.shape == (B, N, 4) and out.p4.dtype == p4.dtype
        assert torch.all(out.p4[~out.extras["mask"]] == 0)
        assert torch.all(out.recon[~out.extras["mask"]] == 0)
    if name == "vae":
        assert set(out.latent) >= {"mu", "logvar", "z"} and out.latent["mu"].shape == (B, 4)
    if name == "gnnae-jl":
        assert out.latent["z"].shape == (B, 6)
    if name == "gnnae-pl":
        assert out.latent["z"].shape == (B, N, 2)
    expected_latent = {"vae": 4, "gnnae-jl": 6, "gnnae-pl": 2 * N, "cnnae": 8}[name]
    assert model.latent_dim() == expected_latent
    assert model.input_dim() == (256 if name == "cnnae" else 3 * N)
    assert model.n_params == sum(p.numel() for p in model.parameters()) > 0

    loss = model.loss(p4, mask)
    assert loss.dim() == 0 and torch.isfinite(loss)
    per_jet = model.loss_per_jet(p4, mask)
    assert per_jet.shape == (B,) and torch.all(per_jet >= 0)
    scores = model.scores(p4, mask)
    assert "default" in scores and len(scores) >= 2
    for key, s in scores.items():
        assert s.shape == (B,) and torch.all(torch.isfinite(s)), key
    assert close(scores["default"], per_jet)
    assert close(model.anomaly_score(p4, mask), per_jet)


def test_score_alternatives(jets):
    p4, mask = jets
    assert {"chamfer", "chamfer_euclidean"} <= set(make("gnnae-jl").scores(p4, mask))
    assert {"chamfer", "chamfer_euclidean", "mse"} <= set(make("gnnae-pl").scores(p4, mask))
    s = make("vae").scores(p4, mask)
    assert {"recon", "kl"} <= set(s)
    assert close(s["default"], s["recon"] + 1e-3 * s["kl"])


@pytest.mark.parametrize("name", MODELS)
def test_other_slot_counts_and_float64(name):
    """More or fewer slots than n_particles are truncated / padded; the model runs in float64 too."""
    model = make(name)
    for slots in (N - 3, N + 5):
        p4, mask = synthetic_jets(5, n_slots=slots, seed=3)
        out = model(p4, mask)
        if out.p4 is not None:
            assert out.p4.shape == (5, N, 4)
    model = model.double()
    p4, mask = synthetic_jets(5, seed=4)
    out = model(p4, mask)
    assert out.recon.dtype == torch.float64 and torch.isfinite(model.loss(p4, mask))


@pytest.mark.parametrize("name", MODELS)
def test_mask_none_inferred_from_zero_padding(name, jets):
    p4, mask = jets
    model = make(name)
    assert close(model.loss_per_jet(p4, None), model.loss_per_jet(p4, mask))


# -- padding never matters -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_padded_slots_do_not_change_output(name, jets):
    p4, mask = jets
    model = make(name)
    ref = model(p4, mask)
    g = torch.Generator().manual_seed(1)
    garbage = torch.where(mask[..., None], p4, 1e3 * torch.randn(p4.shape, generator=g, dtype=p4.dtype))
    out = model(garbage, mask)
    assert close(out.recon, ref.recon) and close(out.target, ref.target) and close(out.p4, ref.p4)
    for k in ref.latent:
        assert close(out.latent[k], ref.latent[k]), k
    assert close(model.loss_per_jet(garbage, mask), model.loss_per_jet(p4, mask))
    nan = torch.where(mask[..., None], p4, torch.full_like(p4, float("nan")))
    assert close(model(nan, mask).recon, ref.recon)


@pytest.mark.parametrize("name", ["gnnae-jl", "gnnae-pl"])
def test_gnn_padding_invariance_extends_to_extra_slots(name, jets):
    """Appending padded slots changes nothing for the graph encoders (the latent of a jet is its own)."""
    p4, mask = jets
    model = make(name, n_particles=N + 4)
    small = make(name)
    small.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("expand")}, strict=False
    )
    z = model(p4, mask).latent["z"]
    z_small = small(p4, mask).latent["z"]
    if name == "gnnae-jl":
        assert close(z, z_small)
    else:
        assert close(z[:, :N], z_small) and torch.all(z[:, N:] == 0)


# -- permutation symmetry ------------------------------------------------------------------------------------
def _permute(p4, mask, seed=2):
    g = torch.Generator().manual_seed(seed)
    perm = torch.stack([torch.randperm(p4.shape[1], generator=g) for _ in range(p4.shape[0])])
    return torch.gather(p4, 1, perm[..., None].expand_as(p4)), torch.gather(mask, 1, perm), perm


def test_gnnae_jl_latent_is_permutation_invariant(jets):
    p4, mask = jets
    model = make("gnnae-jl")
    pp4, pmask, _ = _permute(p4, mask)
    assert close(model(pp4, pmask).latent["z"], model(p4, mask).latent["z"])
    # Chamfer with decoder_mask="none" does not care about slot order either
    model = make("gnnae-jl", decoder_mask="none")
    assert close(model.loss_per_jet(pp4, pmask), model.loss_per_jet(p4, mask))


def test_gnnae_pl_is_permutation_equivariant(jets):
    p4, mask = jets
    model = make("gnnae-pl")
    pp4, pmask, perm = _permute(p4, mask)
    out, pout = model(p4, mask), model(pp4, pmask)
    idx = perm[..., None]
    assert close(pout.latent["z"], torch.gather(out.latent["z"], 1, idx.expand(-1, -1, 2)))
    assert close(pout.recon, torch.gather(out.recon, 1, idx.expand(-1, -1, 3)))
    assert close(model.loss_per_jet(pp4, pmask), model.loss_per_jet(p4, mask))


def test_cnnae_image_ignores_particle_order(jets):
    p4, mask = jets
    model = make("cnnae")
    pp4, pmask, _ = _permute(p4, mask)
    assert close(model(pp4, pmask).recon, model(p4, mask).recon)


# -- reconstruction in GeV -----------------------------------------------------------------------------------
def test_p4_is_rebuilt_from_relative_coordinates_and_jet_axis(jets):
    """A perfect relative-coordinate reconstruction gives back the input 4-momenta (massless inputs)."""
    p4, mask = jets
    rel = relative_coordinates(p4, mask)
    jpt, jeta, jphi = pt_eta_phi(p4.sum(1))
    back = from_relative_coordinates(rel, jpt, jeta, jphi) * mask[..., None]
    assert torch.allclose(back, p4, atol=1e-6 * 1000)
    out = make("gnnae-pl")(p4, mask)
    pt, _, _ = pt_eta_phi(out.p4)
    assert torch.allclose(pt[mask], (out.recon[..., 0].double().abs() * jpt[:, None])[mask], rtol=1e-6)


# -- training ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_overfits_small_batch(name):
    p4, mask = synthetic_jets(32, seed=5)
    model = make(name)
    with torch.no_grad():
        before = model.loss(p4, mask).item()
    # the CNNAE's pixel softmax starts uniform and needs large logits to concentrate: a larger step size
    opt = torch.optim.Adam(model.parameters(), lr=3e-2 if name == "cnnae" else 3e-3)
    model.train()
    for _ in range(30):
        opt.zero_grad()
        model.loss(p4, mask).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = model.loss(p4, mask).item()
    assert after < 0.8 * before, (before, after)


def test_vae_features_mode():
    torch.manual_seed(0)
    x = torch.randn(64, 5) @ torch.randn(5, 5)
    mean, std = x.mean(0), x.std(0)
    model = build_model(
        "vae",
        input_kind="features",
        n_features=5,
        latent_dim=3,
        hidden=[16],
        beta=0.1,
        feature_mean=mean.tolist(),
        feature_std=std.tolist(),
    )
    assert model.input_kind == "features" and model.input_dim() == 5 and model.latent_dim() == 3
    out = model(x)
    assert out.p4 is None and out.recon.shape == out.target.shape == (64, 5)
    assert torch.equal(out.target, x)  # recon/target in the input's units
    assert out.latent["mu"].shape == out.latent["logvar"].shape == (64, 3)
    # the reconstruction error is measured in standardised units: recon = mean => error ~ 1 per feature
    rec = ((x - mean) / std).pow(2).mean(-1)
    s = model.scores(x)
    assert s["recon"].shape == (64,) and torch.isfinite(s["kl"]).all()
    model.eval()
    with torch.no_grad():
        before = model.loss(x).item()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        after = model.loss(x).item()
    assert after < 0.8 * before and after < rec.mean().item()
    with pytest.raises(ValueError, match="expects x of shape"):
        model(torch.randn(4, 6))
    # n_features may come from feature_mean; missing both is an error
    assert build_model("vae", input_kind="features", feature_mean=[0, 0], feature_std=[1, 1]).input_dim() == 2
    with pytest.raises(ConfigError, match="n_features"):
        build_model("vae", input_kind="features")


def test_linear_vae_and_sum_reduction():
    model = build_model(
        "vae",
        input_kind="features",
        n_features=4,
        latent_dim=2,
        hidden=[],
        activation="linear",
        reduction="sum",
        beta=1.0,
    )
    assert len([m for m in model.modules() if isinstance(m, torch.nn.Linear)]) == 2
    x = torch.randn(8, 4)
    out = model.eval()(x)
    rec, kl = model._terms(out)
    assert close(rec, (out.recon - x).pow(2).sum(-1))
    assert close(model.loss_per_jet(x), rec + kl)


def test_vae_eval_deterministic_train_stochastic(jets):
    p4, mask = jets
    model = make("vae")
    a, b = model(p4, mask), model(p4, mask)
    assert torch.equal(a.recon, b.recon) and torch.equal(a.latent["z"], a.latent["mu"])
    assert torch.equal(model.anomaly_score(p4, mask), model.anomaly_score(p4, mask))
    model.train()
    c, d = model(p4, mask), model(p4, mask)
    assert not torch.equal(c.latent["z"], d.latent["z"]) and torch.equal(c.latent["mu"], d.latent["mu"])


# -- configuration -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name,bad,good",
    [
        ("vae", "latnt_dim", "latent_dim"),
        ("gnnae-jl", "node_size", "node_sizes"),
        ("gnnae-pl", "latent_node_dims", "latent_node_dim"),
        ("cnnae", "chanels", "channels"),
    ],
)
def test_misspelt_key_names_the_closest(name, bad, good):
    with pytest.raises(ConfigError, match=f"did you mean '{good}'"):
        build_model(name, **{bad: 3})


@pytest.mark.parametrize(
    "name,cfg",
    [
        ("vae", {"activation": "sigmoidd"}),
        ("vae", {"input_kind": "image"}),
        ("vae", {"feature_mean": [0.0] * 90}),
        ("gnnae-jl", {"edge_sizes": [[8]]}),
        ("gnnae-jl", {"decoder_mask": "output"}),
        ("gnnae-pl", {"aggregation": "max"}),
        ("gnnae-pl", {"feature_scale": [1, 1]}),
        ("cnnae", {"n_pixels": 30}),
    ],
)
def test_bad_values_raise_config_error(name, cfg):
    with pytest.raises(ConfigError):
        build_model(name, **cfg)


def test_jl_and_pl_have_distinct_keys():
    assert "latent_dim" in model_config_keys("gnnae-jl") and "latent_node_dim" not in model_config_keys(
        "gnnae-jl"
    )
    assert "latent_node_dim" in model_config_keys("gnnae-pl") and "decoder_mask" not in model_config_keys(
        "gnnae-pl"
    )


@pytest.mark.parametrize("name", MODELS)
def test_state_dict_round_trip(name, jets):
    """A checkpoint plus the config rebuilds the same model (buffers included)."""
    p4, mask = jets
    cfg = dict(SMALL[name])
    if name == "vae":
        cfg.update(feature_mean=[0.01] * (3 * N), feature_std=[0.5] * (3 * N))
    torch.manual_seed(0)
    a = build_model(name, **cfg).eval()
    torch.manual_seed(1)
    b = build_model(name, **cfg).eval()
    b.load_state_dict(a.state_dict())
    assert close(a(p4, mask).recon, b(p4, mask).recon)


import yaml  # noqa: E402


@pytest.mark.parametrize(
    "fname,name",
    [
        ("vae.yaml", "vae"),
        ("gnnae_jl.yaml", "gnnae-jl"),
        ("gnnae_pl.yaml", "gnnae-pl"),
        ("cnnae.yaml", "cnnae"),
    ],
)
def test_shipped_configs_build(fname, name):
    cfg = yaml.safe_load((CONFIGS / fname).read_text())
    assert cfg["defaults"] == ["base.yaml"]
    block = dict(cfg["model"])
    assert block.pop("name") == name
    model = build_model(name, **block)
    assert cfg["trainer"]["out"].startswith("runs/")
    # parameter counts stay in the published ballpark (GNNAE O(1e4-1e5), CNNAE ~1.7e6 at 128 channels)
    lo, hi = {"vae": (1e3, 1e6), "gnnae-jl": (1e4, 2e5), "gnnae-pl": (1e4, 2e5), "cnnae": (1e5, 5e6)}[name]
    assert lo < model.n_params < hi
