"""Per-direction relevance of Gaussian latents, and the linear-Gaussian beta-VAE toy theory behind it."""

import math

import numpy as np
import pytest
import torch

from lgae.data.toys import make_toy
from lgae.eval.relevance import (
    KL_THRESHOLD,
    LOCAL_THRESHOLD,
    encode,
    local_relevance,
    model_relevance,
    noise_variance,
    relevance,
)
from lgae.models import build_model


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _posterior(rng, n, sigma2):
    """Posterior parameters of a converged linear VAE: Var mu = 1 - sigma^2, constant sigma^2."""
    sigma2 = np.asarray(sigma2, dtype=float)
    mu = rng.normal(size=(n, sigma2.size)) * np.sqrt(1 - sigma2)
    return mu, np.broadcast_to(np.log(sigma2), mu.shape).copy()


def test_relevance_statistics_match_closed_form():
    rng = np.random.default_rng(0)
    sigma2 = [0.3, 1.0, 0.05, 0.9]
    mu, logvar = _posterior(rng, 200_000, sigma2)
    r = relevance(mu, logvar)
    expected_kl = -0.5 * np.log(sigma2)  # (Var mu + sigma^2 - ln sigma^2 - 1) / 2 with Var mu = 1 - sigma^2
    np.testing.assert_allclose(r["kl"], expected_kl, atol=5e-3)
    np.testing.assert_allclose(r["var_mu"], 1 - np.asarray(sigma2), atol=5e-3)
    np.testing.assert_allclose(r["one_minus_sigma2"], 1 - np.asarray(sigma2), atol=1e-12)
    assert list(r["order"]) == [2, 0, 3, 1]
    assert r["relevant"].tolist() == [True, False, True, False] and r["n_relevant"] == 2  # 0.053 nats < 0.1
    assert r["kl_fraction"].sum() == pytest.approx(1.0)
    assert r["kl_total"] == pytest.approx(r["kl"].sum())
    assert list(relevance(mu, logvar, rank_by="var_mu")["order"]) == [2, 0, 3, 1]
    assert relevance(mu, logvar, threshold=0.01)["n_relevant"] == 3


def test_relevance_takes_torch_and_rejects_bad_input():
    mu = torch.zeros(10, 3)
    r = relevance(mu, torch.zeros(10, 3))
    assert isinstance(r["kl"], np.ndarray) and r["n_relevant"] == 0 and np.all(r["kl"] == 0)
    with pytest.raises(ValueError, match="same shape"):
        relevance(np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="rank_by"):
        relevance(np.zeros((4, 2)), np.zeros((4, 2)), rank_by="size")


def test_local_threshold_is_the_kl_threshold_of_a_linear_direction():
    # a linear-VAE direction with sigma^2 = s has KL = -ln(s) / 2 and g = 1 - s
    assert LOCAL_THRESHOLD == pytest.approx(1 - math.exp(-2 * KL_THRESHOLD))


def test_local_relevance_of_a_linear_decoder():
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    w = torch.tensor(
        q[:, :3] * np.array([2.0, 1.0, 0.01]), dtype=torch.float64
    )  # (D=5, d=3) orthogonal columns
    sigma2 = np.array([0.1, 0.5, 0.2])
    mu, logvar = _posterior(rng, 50, sigma2)
    nv = 0.05
    out = local_relevance(lambda z: z @ w.T, mu, logvar, nv)
    expected = np.sort(sigma2 * np.array([4.0, 1.0, 1e-4]) / nv)[::-1]
    np.testing.assert_allclose(out["g"], np.broadcast_to(expected, (50, 3)), rtol=1e-6)
    assert (
        out["n_local"] == 2 and out["frac_at_n_local"] == 1.0 and out["dim_counts"].tolist() == [0, 0, 50, 0]
    )


def test_local_relevance_is_rotation_invariant_where_the_axes_are_not():
    """A unit circle encoded as a latent circle: two relevant axes, one local direction."""
    t = np.linspace(-np.pi, np.pi, 400, endpoint=False)
    mu = np.stack([np.cos(t), np.sin(t)], 1)
    logvar = np.full_like(mu, np.log(0.01))

    def decode(z):  # radial projection onto the circle: insensitive to the radial direction
        return z / z.norm(dim=-1, keepdim=True)

    assert relevance(mu, logvar)["n_relevant"] == 2
    loc = local_relevance(decode, mu, logvar, noise_var=0.001)
    np.testing.assert_allclose(loc["g"][:, 0], 10.0, rtol=1e-6)  # sigma^2 / noise_var along the tangent
    np.testing.assert_allclose(loc["g"][:, 1], 0.0, atol=1e-9)
    assert loc["n_local"] == 1


def test_model_relevance_runs_the_registered_vae():
    model = build_model("vae", input_kind="features", n_features=3, latent_dim=2, hidden=[8], beta=0.1)
    model.train()
    x = torch.randn(50, 3)
    r = model_relevance(model, x, batch_size=16)
    assert model.training  # mode restored
    assert r["mu"].shape == (50, 2) and r["kl"].shape == (2,) and r["local"]["g"].shape == (50, 2)
    mu, logvar = encode(model, [(x[:20],), (x[20:],)])  # an iterable of batches works too
    np.testing.assert_allclose(mu, r["mu"], rtol=1e-5, atol=1e-6)
    assert noise_variance(model) == pytest.approx(0.1 * 3 / 2)
    model_sum = build_model(
        "vae", input_kind="features", n_features=3, latent_dim=2, beta=0.1, reduction="sum"
    )
    assert noise_variance(model_sum) == pytest.approx(0.05)


def _train_linear_vae(lam, beta, rotate, seed=0, n=8000, steps=600):
    x, meta = make_toy("gaussian", n, seed, variances=list(lam), rotate=rotate)
    x = torch.tensor(x, dtype=torch.float32)
    torch.manual_seed(seed)
    model = build_model(
        "vae",
        input_kind="features",
        n_features=len(lam),
        latent_dim=len(lam),
        hidden=[],
        activation="linear",
        beta=beta,
        reduction="sum",
    )
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=1e-4)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = model.loss(x[torch.randint(0, n, (4096,), generator=gen)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model, x, meta


def test_linear_vae_matches_the_toy_theory():
    """Linear-Gaussian beta-VAE (summed squared error, so beta_eff = beta) on data with variances lambda_i.

    Theory (docs/symmetry.md): lambda_i > beta/2 stays active with sigma_i^2 = beta / (2 lambda_i), KL_i =
    ln(2 lambda_i / beta) / 2, Var mu_i = 1 - sigma_i^2, local g_i = 1 - sigma_i^2, decoder column along the
    eigenvector with squared norm lambda_i - beta/2; lambda_i <= beta/2 collapses.
    """
    lam = np.array([4.0, 1.0, 0.25, 0.02])
    beta = 0.2
    model, x, meta = _train_linear_vae(lam, beta, rotate=True)
    r = model_relevance(model, x)
    o = r["order"]
    active = lam > beta / 2
    assert r["n_relevant"] == active.sum() == 3 and r["local"]["n_local"] == 3
    sigma2 = np.where(active, beta / (2 * lam), 1.0)
    np.testing.assert_allclose(r["kl"][o], np.where(active, 0.5 * np.log(2 * lam / beta), 0.0), atol=0.03)
    np.testing.assert_allclose(r["mean_sigma2"][o], sigma2, atol=0.02)
    np.testing.assert_allclose(r["var_mu"][o], 1 - sigma2, atol=0.04)
    np.testing.assert_allclose(
        (r["var_mu"] + r["mean_sigma2"]), 1.0, atol=0.03
    )  # every latent, at convergence
    np.testing.assert_allclose(r["local"]["spectrum"], 1 - sigma2, atol=0.03)
    w = model.decoder[0].weight.detach().double().numpy()[:, o]  # (D, d): columns in relevance order
    np.testing.assert_allclose((w**2).sum(0), np.where(active, lam - beta / 2, 0.0), rtol=0.05, atol=0.01)
    eig = np.asarray(meta["eigenvectors"])  # rows: the data's principal directions
    for i in np.flatnonzero(active):
        cos = abs(eig[i] @ w[:, i]) / np.linalg.norm(w[:, i])
        assert cos > 0.99, f"decoder column {i} not along eigenvector {i}: |cos| = {cos:.3f}"


def test_linear_vae_collapse_threshold_moves_with_beta():
    lam = np.array([1.0, 0.3, 0.1])
    for beta, n_active in ((0.1, 3), (0.4, 2), (1.0, 1)):
        model, x, _ = _train_linear_vae(lam, beta, rotate=False, steps=400)
        r = model_relevance(model, x)
        assert r["local"]["n_local"] == n_active == (lam > beta / 2).sum(), (
            beta,
            r["kl"],
            r["local"]["spectrum"],
        )
