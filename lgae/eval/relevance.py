"""Per-direction relevance of a Gaussian latent space (symmetry discovery with a plain VAE).

For an encoder ``q(z|x) = N(mu(x), diag sigma^2(x))`` with prior ``N(0, I)``, direction ``i`` gets three
statistics, each averaged over the dataset:

``kl``
    ``KL_i = < (mu_i^2 + sigma_i^2 - ln sigma_i^2 - 1) / 2 >_x`` in nats: the direction's share of the KL
    term, an upper bound on the information (per event) it carries about x. A collapsed direction (mu = 0,
    sigma = 1) has KL_i = 0.
``var_mu``
    ``Var_x[mu_i(x)]``: the "active units" statistic (Burda et al.): how much the posterior mean moves with x.
``one_minus_sigma2``
    ``1 - <sigma_i^2>_x``: how much the posterior is narrower than the prior.

Directions are ranked by decreasing ``rank_by`` (default ``"kl"``) and counted as *relevant* when ``KL_i >
threshold`` (default :data:`KL_THRESHOLD` = 0.1 nats), whatever the ranking statistic. Why 0.1 nats: in the
linear-Gaussian beta-VAE (``docs/symmetry.md``, "toy-model theory") an active direction of data variance
``lambda`` has ``KL = ln(2 lambda / beta_eff) / 2``; 0.1 nats is ``lambda = 1.22 beta_eff / 2``, just above
the collapse point, while a collapsed direction of a trained VAE stays at the 1e-4 to 1e-3 nats level of
optimisation noise, and a direction that encodes a degree of freedom well above the noise floor has ~1 nat or
more.

These per-axis statistics depend on the latent basis. A circle (a sphere) cannot be mapped continuously onto
one (two) latent axes, so the VAE encodes it as a latent circle (sphere) that spans two (three) axes: the axis
count measures the dimension of that embedding, not the intrinsic dimension. :func:`local_relevance` measures
the latter: per event, the number of latent directions in which the posterior noise actually moves the
reconstruction (rotation invariant in latent space), with a threshold equivalent to the KL one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

__all__ = [
    "KL_THRESHOLD",
    "LOCAL_THRESHOLD",
    "relevance",
    "local_relevance",
    "model_relevance",
    "encode",
    "noise_variance",
]

#: nats; a direction with dataset-averaged KL above this is counted as relevant (see the module docstring)
KL_THRESHOLD = 0.1
#: a local direction counts when its posterior signal-to-noise ``g`` is above ``1 - exp(-2 KL_THRESHOLD)``:
#: the ``g = 1 - sigma^2`` of a linear-VAE direction whose KL is KL_THRESHOLD
LOCAL_THRESHOLD = float(1.0 - np.exp(-2 * KL_THRESHOLD))

_RANKS = ("kl", "var_mu", "one_minus_sigma2")


def _np(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def relevance(mu, logvar, rank_by: str = "kl", threshold: float = KL_THRESHOLD) -> dict:
    """Relevance statistics of each latent direction.

    Parameters
    ----------
    mu, logvar : array-like
        ``(N, d)`` posterior means and log-variances over a dataset (numpy or torch).
    rank_by : {"kl", "var_mu", "one_minus_sigma2"}
        Statistic that sets ``order``.
    threshold : float
        A direction is relevant when its ``kl`` exceeds this (nats).

    Returns
    -------
    dict of numpy arrays / ints
        ``kl``, ``var_mu``, ``one_minus_sigma2``, ``mean_mu``, ``mean_sigma2`` (each ``(d,)``, in the latent's
        own order); ``kl_fraction`` (``kl / kl.sum()``); ``order`` (indices, decreasing ``rank_by``);
        ``relevant`` (``(d,)`` bool); ``n_relevant``; ``rank_by``; ``threshold``; ``kl_total``.
    """
    mu, logvar = _np(mu), _np(logvar)
    if mu.ndim != 2 or mu.shape != logvar.shape or mu.shape[0] == 0:
        raise ValueError(
            f"relevance expects mu and logvar of the same shape (N > 0, d); got {mu.shape}, {logvar.shape}"
        )
    if rank_by not in _RANKS:
        raise ValueError(f"rank_by must be one of {_RANKS}, got {rank_by!r}")
    sigma2 = np.exp(logvar)
    kl = 0.5 * (mu**2 + sigma2 - logvar - 1.0).mean(axis=0)
    stats = {
        "kl": kl,
        "var_mu": mu.var(axis=0),
        "one_minus_sigma2": 1.0 - sigma2.mean(axis=0),
        "mean_mu": mu.mean(axis=0),
        "mean_sigma2": sigma2.mean(axis=0),
    }
    total = float(kl.sum())
    stats["kl_fraction"] = kl / total if total > 0 else np.zeros_like(kl)
    stats["order"] = np.argsort(-stats[rank_by], kind="stable")
    stats["relevant"] = kl > threshold
    stats["n_relevant"] = int(stats["relevant"].sum())
    stats["rank_by"] = rank_by
    stats["threshold"] = float(threshold)
    stats["kl_total"] = total
    return stats


def local_relevance(
    decode, mu, logvar, noise_var: float, threshold: float = LOCAL_THRESHOLD, batch_size: int = 1024
) -> dict:
    """Local (per-event) relevance spectrum of a Gaussian-latent model: the intrinsic dimension it sees.

    At each event the posterior noise ``sigma(x)`` moves the decoder output by ``J diag(sigma)`` (``J = d
    decode / dz`` at ``mu(x)``); in units of the reconstruction noise variance ``noise_var`` its squared
    singular values

        g_k(x) = eig_k( diag(sigma) J^T J diag(sigma) ) / noise_var

    say in how many latent directions the event is *encoded*: a direction the decoder ignores (radial in a
    latent circle) or a collapsed one gives g = 0; in the linear-Gaussian toy theory an active direction has
    exactly ``g = 1 - sigma^2 = 1 - beta_eff / (2 lambda)``. Unlike the per-axis statistics of
    :func:`relevance` this is invariant under rotations of the latent space, so a circle encoded as a latent
    circle (which needs two latent axes) still counts once.

    Parameters
    ----------
    decode : callable
        ``z (B, d) -> reconstruction (B, D)`` in the units of the reconstruction error.
    mu, logvar : array-like
        ``(N, d)`` posterior parameters of the events.
    noise_var : float
        Reconstruction noise variance the loss implies (see :func:`noise_variance`).
    threshold : float
        A direction counts at an event when ``g_k(x) > threshold``.

    Returns
    -------
    dict
        ``g`` ``(N, d)`` (each row sorted decreasingly), ``spectrum`` (mean of ``g`` over events),
        ``local_dim`` ``(N,)`` (count above threshold per event), ``dim_counts`` (``local_dim`` histogram,
        index = dimension), ``n_local`` (the most common local dimension), ``frac_at_n_local``, ``threshold``.
    """
    from torch.func import jacrev, vmap

    mu_t = torch.as_tensor(_np(mu))
    sigma = torch.exp(0.5 * torch.as_tensor(_np(logvar)))
    owner = getattr(decode, "__self__", decode)  # a bound method's module, or the module itself
    ref = next(iter(owner.parameters()), None) if hasattr(owner, "parameters") else None
    dtype = ref.dtype if ref is not None else mu_t.dtype  # float64 for a parameter-free decode
    device = ref.device if ref is not None else torch.device("cpu")

    def one(z):
        return decode(z[None])[0]

    gs = []
    with torch.no_grad():
        for i in range(0, len(mu_t), batch_size):
            z = mu_t[i : i + batch_size].to(device=device, dtype=dtype)
            jac = vmap(jacrev(one))(z)  # (B, D, d)
            a = jac * sigma[i : i + batch_size, None, :].to(device=device, dtype=dtype)
            m = (a.transpose(1, 2) @ a).double().cpu() / float(noise_var)
            gs.append(torch.linalg.eigvalsh(m).flip(-1).clamp_min(0).numpy())
    g = np.concatenate(gs)
    local_dim = (g > threshold).sum(axis=1)
    counts = np.bincount(local_dim, minlength=g.shape[1] + 1)
    n_local = int(np.argmax(counts))
    return {
        "g": g,
        "spectrum": g.mean(axis=0),
        "local_dim": local_dim,
        "dim_counts": counts,
        "n_local": n_local,
        "frac_at_n_local": float(counts[n_local] / len(g)),
        "threshold": float(threshold),
    }


def noise_variance(model) -> float:
    """Reconstruction noise variance implied by a model's loss, in the units of ``model.decode``.

    lgae's ``vae``: ``recon + beta * KL`` with the squared error summed (``reduction="sum"``) is a Gaussian
    likelihood of variance ``beta / 2``; averaged over the D inputs (``"mean"``), of variance ``beta * D /
    2``.
    """
    beta = float(model.beta)
    if getattr(model, "reduction", "mean") == "sum":
        return beta / 2
    return beta * int(model.input_dim()) / 2


def _batches(x, batch_size: int) -> Iterable[torch.Tensor]:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        x = torch.as_tensor(x)
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size]
    else:  # an iterable of batches (tensors, or tuples whose first item is the input)
        for b in x:
            yield torch.as_tensor(b[0] if isinstance(b, (tuple, list)) else b)


@torch.no_grad()
def encode(model, x, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Posterior ``(mu, logvar)`` of a Gaussian-latent model over ``x`` (array ``(N, D)`` or an iterable of
    batches).

    The model runs in eval mode (its training flag is restored afterwards) and must return an output whose
    ``latent`` dict has ``"mu"`` and ``"logvar"``.
    """
    was_training = model.training
    model.eval()
    mus, lvs = [], []
    try:
        for xb in _batches(x, batch_size):
            ref = next(model.parameters(), None)
            if ref is not None and xb.is_floating_point():
                xb = xb.to(device=ref.device, dtype=ref.dtype)
            lat = model(xb).latent
            if "mu" not in lat or "logvar" not in lat:
                raise ValueError(
                    f"model latent has keys {sorted(lat)}; a Gaussian latent needs 'mu' and 'logvar'"
                )
            mus.append(_np(lat["mu"]))
            lvs.append(_np(lat["logvar"]))
    finally:
        model.train(was_training)
    return np.concatenate(mus), np.concatenate(lvs)


def model_relevance(
    model,
    x,
    batch_size: int = 4096,
    rank_by: str = "kl",
    threshold: float = KL_THRESHOLD,
    local: bool | None = None,
    local_threshold: float = LOCAL_THRESHOLD,
) -> dict:
    """:func:`relevance` of a model's latent over ``x`` (see :func:`encode`); also returns ``mu`` and
    ``logvar``.

    With ``local`` (default: whenever the model has ``decode`` and ``beta``, as lgae's ``vae``) the result
    also holds ``"local"``: :func:`local_relevance` with the model's decoder and :func:`noise_variance`.
    """
    mu, logvar = encode(model, x, batch_size)
    out = relevance(mu, logvar, rank_by=rank_by, threshold=threshold)
    out["mu"], out["logvar"] = mu, logvar
    if local is None:
        local = hasattr(model, "decode") and hasattr(model, "beta")
    if local:
        was_training = model.training
        model.eval()
        try:
            out["local"] = local_relevance(model.decode, mu, logvar, noise_variance(model), local_threshold)
        finally:
            model.train(was_training)
    return out
