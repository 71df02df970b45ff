"""The LGAE model: exact Lorentz equivariance, permutation/padding behaviour, fast == general path, training,
faithful (reference-quirk) mode."""

import pytest
import torch

from lgae.models import build_model, model_config_keys
from lgae.testing import adam_steps, equivariance_error

N = 30


def synthetic_jets(batch: int, n: int = N, seed: int = 0, nmin: int = 5, massless: bool = True):
    """~1 TeV jets of ``nmin..n`` constituents within ~0.1 of a random axis, pT-ordered, zero-padded;
    float64."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.randint(nmin, n + 1, (batch,), generator=g)
    mask = torch.arange(n)[None] < n_real[:, None]
    z = torch.rand(batch, n, generator=g, dtype=torch.float64).pow(3) * mask
    z, order = (z / z.sum(1, keepdim=True)).sort(1, descending=True)
    mask = mask.gather(1, order)
    pt = 1000.0 * z
    eta = (
        0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64)
        + torch.rand(batch, 1, generator=g)
        - 0.5
    )
    phi = 0.1 * torch.randn(batch, n, generator=g, dtype=torch.float64) + 6.0 * torch.rand(
        batch, 1, generator=g
    )
    px, py, pz = pt * torch.cos(phi), pt * torch.sin(phi), pt * torch.sinh(eta)
    e = torch.sqrt(px**2 + py**2 + pz**2 + (0.0 if massless else 0.14**2))
    return torch.stack([e, px, py, pz], -1) * mask[..., None], mask


def _stats(per_jet: dict, names=("p4", "latent.scalars", "latent.vectors")):
    out = {}
    for name in names:
        e = per_jet[name].flatten()
        out[name] = (float(e.median()), float(e.max()))
    return out


def _check(per_jet, median_tol, worst_tol):
    for name, (med, worst) in _stats(per_jet).items():
        assert med <= median_tol, f"{name}: median relative error {med:.2e} > {median_tol:.0e}"
        assert worst <= worst_tol, f"{name}: worst jet relative error {worst:.2e} > {worst_tol:.0e}"


CONFIGS = {
    "mix": dict(aggregation="mix", tau_vectors=2),
    "minmax": dict(aggregation="minmax", tau_vectors=8),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_equivariance_float64_rapidity10_eval_train_and_after_steps(name):
    torch.manual_seed(0)
    model = build_model("lgae", dtype="float64", **CONFIGS[name])
    p, mask = synthetic_jets(200, seed=1)
    _, per = equivariance_error(model, p, mask, max_rapidity=10.0, n_transforms=2, seed=0, per_jet=True)
    _check(per, 1e-6, 1e-5)
    # train mode (lgae.testing switches modules to eval; a plain callable keeps the mode), after a few steps
    adam_steps(model, p[:64], mask[:64])
    model.train()
    _, per = equivariance_error(
        lambda x, m: model(x, m),
        p,
        mask,
        max_rapidity=10.0,
        n_transforms=1,
        seed=1,
        per_jet=True,
        dtype=torch.float64,
    )
    _check(per, 1e-6, 1e-5)


def test_equivariance_massive_constituents_float64():
    # pion-mass constituents: beyond rapidity ~5 the float64 components of the *transformed input* no longer
    # resolve
    # m^2 ~ 0.02 GeV^2 (noise eps E'^2), so the stress test stays at rapidity 5 (gamma 74)
    model = build_model("lgae", dtype="float64")
    p, mask = synthetic_jets(64, seed=2, massless=False)
    _, per = equivariance_error(model, p, mask, max_rapidity=5.0, n_transforms=2, per_jet=True)
    _check(per, 1e-6, 1e-5)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_equivariance_float32_rapidity1(name):
    torch.manual_seed(0)
    model = build_model("lgae", dtype="float32", **CONFIGS[name])
    p, mask = synthetic_jets(200, seed=3)
    _, per = equivariance_error(model, p, mask, max_rapidity=1.0, n_transforms=2, per_jet=True)
    _check(per, 1e-4, 1e-3)


def test_equivariance_maxdim3_general_path():
    torch.manual_seed(0)
    model = build_model(
        "lgae", maxdim=3, dtype="float64", encoder_channels=[2, 2, 2], decoder_channels=[2, 2, 2]
    )
    assert not model.fast
    p, mask = synthetic_jets(16, seed=4)
    _, per = equivariance_error(model, p, mask, max_rapidity=10.0, n_transforms=2, per_jet=True)
    _check(per, 1e-6, 1e-5)


@pytest.mark.parametrize(
    "cfg",
    [
        dict(),
        dict(aggregation="minmax", tau_vectors=3),
        dict(complex_weights=True),
        dict(decoder_edges="radial"),
        dict(faithful=True, aggregation="minmax"),
    ],
)
def test_fast_path_equals_general_path(cfg):
    torch.manual_seed(0)
    fast = build_model("lgae", impl="fast", **cfg)
    general = build_model("lgae", impl="general", **cfg)
    general.load_state_dict(fast.state_dict())
    p, mask = synthetic_jets(16, seed=5)
    with torch.no_grad():
        a, b = fast(p, mask), general(p, mask)
    assert torch.allclose(a.p4, b.p4, rtol=0, atol=1e-10 * float(a.p4.abs().max()))
    for k in a.latent:
        assert torch.allclose(a.latent[k], b.latent[k], rtol=0, atol=1e-10 * float(a.latent[k].abs().max()))


def test_minmax_latent_is_permutation_invariant():
    torch.manual_seed(0)
    model = build_model("lgae", aggregation="minmax", tau_vectors=4)
    p, mask = synthetic_jets(32, seed=6)
    perm = torch.randperm(N)
    with torch.no_grad():
        a, b = model(p, mask), model(p[:, perm], mask[:, perm])
    for k in a.latent:
        assert torch.allclose(a.latent[k], b.latent[k], rtol=1e-10, atol=1e-12)
    assert torch.allclose(a.p4, b.p4, rtol=1e-10, atol=1e-9)  # the decoder only sees the latent


@pytest.mark.parametrize("agg", ["mix", "minmax"])
def test_padding_never_changes_the_output(agg):
    torch.manual_seed(0)
    model = build_model("lgae", aggregation=agg)
    p, mask = synthetic_jets(16, seed=7)
    garbage = p.clone()
    garbage[~mask] = torch.tensor([50.0, 1.0, -2.0, 3.0], dtype=torch.float64)
    with torch.no_grad():
        a, b = model(p, mask), model(garbage, mask)
        la, lb = model.loss_per_jet(p, mask), model.loss_per_jet(garbage, mask)
    assert torch.equal(a.p4, b.p4) and torch.equal(la, lb)
    if agg == "minmax":  # extra padded slots (a longer input) change nothing either
        p40 = torch.cat([p, torch.zeros(16, 10, 4, dtype=p.dtype)], 1)
        m40 = torch.cat([mask, torch.zeros(16, 10, dtype=torch.bool)], 1)
        with torch.no_grad():
            c = model(p40, m40)
        assert torch.allclose(a.p4, c.p4, rtol=1e-12, atol=1e-10)


def test_outputs_shapes_units_and_scores():
    torch.manual_seed(0)
    model = build_model("lgae", aggregation="minmax", tau_scalars=1, tau_vectors=3)
    p, mask = synthetic_jets(8, seed=8)
    out = model(p, mask)
    assert out.p4.shape == (8, N, 4)
    assert out.latent["scalars"].shape == (8, 2) and out.latent["vectors"].shape == (8, 6, 4)
    assert model.latent_dim() == 2 + 4 * 6
    cm = build_model("lgae", complex_weights=True, tau_vectors=2)
    oc = cm(p, mask)
    assert oc.latent["scalars"].shape == (8, 2) and oc.latent["vectors"].shape == (8, 4, 4)  # [Re..., Im...]
    scores = model.scores(p, mask)
    for key in (
        "default",
        "chamfer",
        "chamfer_euclid",
        "mse",
        "hungarian",
        "latent_mass",
        "jet_mass",
        "mass_error",
    ):
        assert scores[key].shape == (8,) and torch.isfinite(scores[key]).all(), key
    assert torch.allclose(scores["default"], model.anomaly_score(p, mask))
    jet = (p * mask[..., None]).sum(1)
    mass = torch.sqrt(jet[:, 0] ** 2 - (jet[:, 1:] ** 2).sum(-1))
    assert torch.allclose(scores["jet_mass"].double(), mass, rtol=1e-8)  # GeV: outputs in input units


def test_config_keys_and_errors():
    keys = model_config_keys("lgae")
    for k in (
        "tau_scalars",
        "tau_vectors",
        "encoder_channels",
        "decoder_channels",
        "maxdim",
        "aggregation",
        "loss",
        "mlp_width",
        "mlp_depth",
        "n_basis",
        "dtype",
        "faithful",
        "p4_scale",
        "temperature",
    ):
        assert k in keys
    with pytest.raises(ValueError):
        build_model("lgae", impl="fast", maxdim=3)
    with pytest.raises(ValueError):
        build_model("lgae", aggregation="avg")
    with pytest.raises(ValueError):
        build_model("lgae", loss="emd")


@pytest.mark.parametrize("agg", ["mix", "minmax"])
def test_loss_decreases_and_output_does_not_collapse(agg):
    torch.manual_seed(0)
    model = build_model("lgae", aggregation=agg, dtype="float32", tau_vectors=4)
    p, mask = synthetic_jets(64, seed=9)
    p = p.float()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    with torch.no_grad():
        first = float(model.loss(p, mask))
    for _ in range(4):  # epochs of 2 batches
        for i in range(0, 64, 32):
            opt.zero_grad()
            model.loss(p[i : i + 32], mask[i : i + 32]).backward()
            opt.step()
    with torch.no_grad():
        last = float(model.loss(p, mask))
        out = model(p, mask)
    assert last < 0.7 * first
    size = out.p4.norm(dim=-1).mean()
    target = p[mask].norm(dim=-1).mean()
    assert size > 0.1 * target  # no collapse to zero output


def test_faithful_mode_reference_quirks():
    torch.manual_seed(0)
    ref = build_model("lgae", faithful=True, aggregation="mix", tau_vectors=2)
    assert ref.n_params == 63236  # the reference code's count for Mix tau=2 (lgae.md §4.12)
    enc = sum(p.numel() for n, p in ref.named_parameters() if n.startswith(("enc_in", "encoder")))
    mm = build_model("lgae", faithful=True, aggregation="minmax", tau_vectors=2)
    enc_mm = sum(
        p.numel() for n, p in mm.named_parameters() if n.startswith(("enc_in", "encoder", "latent_head"))
    )
    assert enc_mm == 34098 and enc > 0  # reference encoder (lgae.md §4.12)
    p, mask = synthetic_jets(8, seed=10)
    with torch.no_grad():
        out = ref(p, mask)
        # Q3: the decoder ignores the latent scalars
        ls, lv = ref.encode(ref._prepare(p, mask))
        assert torch.equal(ref.decode(ls, lv), ref.decode(ls + 100.0, lv))
    # Q1/Q6: zero-padded slots take part (more padding changes the min-max latent), unlike the clean model
    mm.eval()
    with torch.no_grad():
        a = mm(p[:1], mask[:1]).latent["scalars"]
        n = int(mask[0].sum())
        b = mm(p[:1, :n], mask[:1, :n]).latent["scalars"]
    assert not torch.allclose(a, b)
    assert out.p4.shape == (8, N, 4)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_equivariance_float64_1000_jets(name):
    torch.manual_seed(0)
    model = build_model("lgae", dtype="float64", **CONFIGS[name])
    p, mask = synthetic_jets(1000, seed=11)
    _, per = equivariance_error(model, p, mask, max_rapidity=10.0, n_transforms=4, per_jet=True)
    _check(per, 1e-6, 1e-5)
    adam_steps(model, p[:256], mask[:256], steps=5)
    model.train()
    _, per = equivariance_error(
        lambda x, m: model(x, m),
        p,
        mask,
        max_rapidity=10.0,
        n_transforms=4,
        seed=3,
        per_jet=True,
        dtype=torch.float64,
    )
    _check(per, 1e-6, 1e-5)


@pytest.mark.slow
def test_equivariance_float32_1000_jets_and_maxdim3_bigger():
    torch.manual_seed(0)
    model = build_model("lgae", dtype="float32", aggregation="minmax", tau_vectors=8)
    p, mask = synthetic_jets(1000, seed=12)
    _, per = equivariance_error(model, p, mask, max_rapidity=1.0, n_transforms=4, per_jet=True)
    _check(per, 1e-4, 1e-3)
    m3 = build_model("lgae", maxdim=3, dtype="float64")
    p, mask = synthetic_jets(64, seed=13)
    _, per = equivariance_error(m3, p, mask, max_rapidity=10.0, n_transforms=2, per_jet=True)
    _check(per, 1e-6, 1e-5)


def test_jet_scaled_rest_frame_score_is_finite_for_a_massless_jet():
    """A jet of one massless constituent has no rest frame and zero mass: the jet-scaled score falls back to
    the jet energy instead of dividing by zero."""
    torch.manual_seed(0)
    model = build_model(
        "lgae", aggregation="minmax", loss_frame="rest", loss_scale="jet", n_particles=5, dtype="float32"
    ).eval()
    p4 = torch.zeros(3, 5, 4, dtype=torch.float64)
    mask = torch.zeros(3, 5, dtype=torch.bool)
    p4[0, 0] = torch.tensor([100.0, 60.0, 0.0, 80.0])  # massless, alone
    p4[1, :2] = torch.tensor([[100.0, 60.0, 0.0, 80.0], [50.0, 0.0, 30.0, 40.0]])
    mask[0, 0] = mask[1, :2] = True  # jet 2: empty
    with torch.no_grad():
        score = model.anomaly_score(p4, mask)
    assert torch.isfinite(score).all(), score
