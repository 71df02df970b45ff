"""``lgae latent``: what a trained model's latent space holds.

* Every model: a 2-D PCA (numpy SVD) of the flattened latents, fitted on the background (standardised with the
  background's mean and std), coloured by class; the explained-variance ratios.
* Gaussian-latent models (``latent`` has ``mu`` and ``logvar``): the per-direction relevance of
  :func:`lgae.eval.relevance.relevance` (KL per direction, Var[mu], 1 - <sigma^2>), measured on the background
  (the training distribution), plus the AUC of each ``mu`` direction.
* The LGAE (``latent["vectors"]``, ``(B, tau, 4)`` 4-vectors ``(E, px, py, pz)``): the Lorentz invariants of
  the latent vectors -- their masses ``m_k = sign(v_k^2) sqrt|v_k^2|``, the pairwise products ``v_i . v_j``,
  the mass of their sum -- how the latter follows the jet mass (Pearson and Spearman correlation on each
  class), and how each invariant separates signal from background (AUC). Latent scalars get their AUCs too.

AUCs of latent features are reported as they are: unlike an anomaly score, a latent feature has no a-priori
direction, so ``|AUC - 0.5|`` (``separation``) is the figure of merit there -- it is not a score and never
enters the comparison report.

Writes ``latent.json`` and ``latent_*.png`` into the run directory.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import (
    Sample,
    _model_device_dtype,
    _numpy,
    jet_observables,
    load_sample,
    parse_sample_arg,
    resolve_device,
    write_json,
)
from .metrics import InvertedScoreWarning, auc


def collect_latents(
    model, sample: Sample, batch_size: int = 512, progress: bool = False
) -> dict[str, np.ndarray]:
    """``model(p4, mask).latent`` over a whole sample, as numpy arrays (complex tensors keep their dtype)."""
    import torch
    from tqdm.auto import tqdm

    device, dtype = _model_device_dtype(model)
    chunks: dict[str, list] = {}
    model.eval()
    with torch.no_grad():
        for start in tqdm(
            range(0, len(sample), batch_size),
            desc=f"latents {sample.name}",
            disable=not progress or not sys.stderr.isatty(),
            leave=False,
        ):
            p4 = torch.as_tensor(sample.p4[start : start + batch_size], dtype=dtype, device=device)
            mask = torch.as_tensor(sample.mask[start : start + batch_size], dtype=torch.bool, device=device)
            out = model(p4, mask)
            for k, v in (out.latent or {}).items():
                if hasattr(v, "shape") and v.shape[0] == p4.shape[0]:
                    chunks.setdefault(k, []).append(_numpy(v))
    return {k: np.concatenate(v) for k, v in chunks.items()}


def _minkowski(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[..., 0] * b[..., 0] - (a[..., 1:] * b[..., 1:]).sum(-1)


def _signed_sqrt(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.sqrt(np.abs(x))


def lorentz_invariants(vectors: np.ndarray) -> dict[str, np.ndarray]:
    """Invariants of ``(N, tau, 4)`` latent 4-vectors: ``mass_k``, ``dot_i_j`` (i < j), ``mass_sum``."""
    v = np.real(vectors).astype(np.float64)
    out = {}
    tau = v.shape[1]
    for k in range(tau):
        out[f"mass_{k}"] = _signed_sqrt(_minkowski(v[:, k], v[:, k]))
    for i in range(tau):
        for j in range(i + 1, tau):
            out[f"dot_{i}_{j}"] = _minkowski(v[:, i], v[:, j])
    s = v.sum(1)
    out["mass_sum"] = _signed_sqrt(_minkowski(s, s))
    return out


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _feature_aucs(features_by_class: Sequence[Mapping[str, np.ndarray]], names: Sequence[str]) -> dict:
    """AUC (as is) and separation |AUC - 0.5| of each feature, per signal and combined (0 = background)."""
    out: dict[str, dict] = {}
    bkg = features_by_class[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvertedScoreWarning)
        for f in bkg:
            entry = {}
            for i, n in enumerate(names):
                a = auc(bkg[f], features_by_class[i + 1][f], warn=False)
                entry[n] = {"auc": a, "separation": abs(a - 0.5)}
            if len(names) > 1:
                allsig = np.concatenate([features_by_class[i + 1][f] for i in range(len(names))])
                a = auc(bkg[f], allsig, warn=False)
                entry["combined"] = {"auc": a, "separation": abs(a - 0.5)}
            out[f] = entry
    return out


def pca_2d(flat_by_class: Sequence[np.ndarray], n_components: int = 2) -> tuple[list[np.ndarray], np.ndarray]:
    """Project every class onto the top principal components of the (standardised) background latents."""
    ref = flat_by_class[0]
    mean = ref.mean(0)
    std = ref.std(0)
    std = np.where(std > 0, std, 1.0)
    z = (ref - mean) / std
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(n_components, vt.shape[0])
    proj = [((x - mean) / std) @ vt[:k].T for x in flat_by_class]
    if k < n_components:
        proj = [np.pad(p, ((0, 0), (0, n_components - k))) for p in proj]
    return proj, ratio


def latent_analysis(
    model,
    config: Mapping | None,
    background: Sample,
    signals: Sequence[Sample],
    out_dir: str | os.PathLike,
    batch_size: int = 512,
    plots: bool = True,
    progress: bool = True,
) -> dict:
    """Run the latent-space analysis and write ``latent.json`` (+ PNGs) into ``out_dir``."""
    from . import plots as P

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    samples = [background, *signals]
    names = [s.name for s in signals]
    lat = [collect_latents(model, s, batch_size, progress) for s in samples]
    keys = list(lat[0])
    result: dict[str, Any] = {
        "run_dir": str(out_dir),
        "name": (config or {}).get("name"),
        "model": getattr(model, "name", type(model).__name__),
        "background": background.name,
        "signals": names,
        "n_jets": {s.name: len(s) for s in samples},
        "latent_keys": {k: list(lat[0][k].shape[1:]) for k in keys},
        "auc_note": "AUCs of latent features are reported as is; a latent feature has no a-priori direction, "
        "so separation = |AUC - 0.5| is the figure of merit",
    }
    files = []
    if not keys:
        result["note"] = "the model exposes no latent tensors"
        write_json(out_dir / "latent.json", result)
        return result

    # --- PCA of everything
    # -------------------------------------------------------------------------------------------
    flat = [
        np.concatenate(
            [np.real(l[k]).reshape(len(s), -1).astype(np.float64) for k in keys]
            + ([np.imag(l[k]).reshape(len(s), -1) for k in keys if np.iscomplexobj(l[k])]),
            axis=1,
        )
        for l, s in zip(lat, samples)
    ]
    proj, ratio = pca_2d(flat)
    result["pca"] = {
        "dim": int(flat[0].shape[1]),
        "explained_variance_ratio": [float(r) for r in ratio[:10]],
        "fitted_on": background.name,
        "standardised": True,
    }
    if plots:
        files.append(
            P.scatter_2d(
                {s.name: p for s, p in zip(samples, proj)},
                out_dir / "latent_pca.png",
                f"PC 1 ({100 * ratio[0]:.1f} %)",
                f"PC 2 ({100 * ratio[1] if ratio.size > 1 else 0:.1f} %)",
                f"{result['model']}: latent PCA (fit on {background.name})",
            )
        )

    # --- Gaussian latents
    # -----------------------------------------------------------------------------------------
    if "mu" in keys and "logvar" in keys:
        try:
            from .relevance import relevance
        except ImportError:  # pragma: no cover - while lgae.eval.relevance is being written
            relevance = None
        entry: dict[str, Any] = {}
        if relevance is not None:
            r = relevance(lat[0]["mu"], lat[0]["logvar"])
            entry = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()}
            entry["measured_on"] = background.name
            if plots:
                order = list(r["order"])
                files.append(
                    P.bar_chart(
                        {"KL (nats)": np.asarray(r["kl"])[order]},
                        [f"z{i}" for i in order],
                        out_dir / "latent_relevance.png",
                        "KL per direction (nats)",
                        f"{result['model']}: relevance, {r['n_relevant']} relevant",
                        logy=True,
                    )
                )
        mu_feats = [
            {f"mu_{i}": l["mu"][:, i].astype(np.float64) for i in range(l["mu"].shape[1])} for l in lat
        ]
        entry["mu_auc"] = _feature_aucs(mu_feats, names)
        result["gaussian"] = entry

    # --- latent 4-vectors (LGAE)
    # ------------------------------------------------------------------------------------
    if "vectors" in keys and lat[0]["vectors"].ndim == 3 and lat[0]["vectors"].shape[-1] == 4:
        inv = [lorentz_invariants(l["vectors"]) for l in lat]
        jm = [jet_observables(s.p4, s.mask)["mass"] for s in samples]
        corr = {}
        for s, iv, m in zip(samples, inv, jm):
            corr[s.name] = {
                "pearson": _pearson(iv["mass_sum"], m),
                "spearman": _spearman(iv["mass_sum"], m),
                "median_ratio": float(np.median(iv["mass_sum"][m > 0] / m[m > 0])) if (m > 0).any() else None,
            }
        feats = [dict(iv) for iv in inv]
        if "scalars" in keys:
            for f, l in zip(feats, lat):
                sc = np.real(l["scalars"]).reshape(l["scalars"].shape[0], -1)
                for i in range(sc.shape[1]):
                    f[f"scalar_{i}"] = sc[:, i].astype(np.float64)
        for f, m in zip(feats, jm):
            f["jet_mass (input)"] = m
        result["lorentz"] = {
            "tau": int(lat[0]["vectors"].shape[1]),
            "complex": bool(np.iscomplexobj(lat[0]["vectors"])),
            "mass_sum_vs_jet_mass": corr,
            "auc": _feature_aucs(feats, names),
            "units": "latent vectors in the model's internal momentum units; masses are signed sqrt(v.v)",
        }
        if plots:
            files.append(
                P.scatter_2d(
                    {s.name: np.stack([m, iv["mass_sum"]], 1) for s, m, iv in zip(samples, jm, inv)},
                    out_dir / "latent_mass_sum_vs_jet_mass.png",
                    r"Jet mass $m_J$ [GeV]",
                    r"Mass of the sum of latent vectors (model units)",
                    f"{result['model']}: latent mass vs jet mass",
                )
            )
            best = sorted(
                result["lorentz"]["auc"].items(), key=lambda kv: -max(v["separation"] for v in kv[1].values())
            )[:12]
            labels = [k for k, _ in best]
            series = {
                n: [v[n]["auc"] for _, v in best] for n in names + (["combined"] if len(names) > 1 else [])
            }
            files.append(
                P.bar_chart(
                    series,
                    labels,
                    out_dir / "latent_invariants_auc.png",
                    "AUC (as is)",
                    f"{result['model']}: latent invariants vs {background.name}",
                    reference=0.5,
                )
            )
    elif "vectors" not in keys and "mu" not in keys:
        # any other latent: AUC of each flattened component (first 32)
        comp = [
            {
                f"{k}_{i}": np.real(l[k]).reshape(len(s), -1)[:, i].astype(np.float64)
                for k in keys
                for i in range(min(np.real(l[k]).reshape(len(s), -1).shape[1], 32))
            }
            for l, s in zip(lat, samples)
        ]
        result["components_auc"] = _feature_aucs(comp, names)
    result["plots"] = files
    write_json(out_dir / "latent.json", result)
    return result


def latent_run(
    run_dir: str | os.PathLike,
    background: str,
    signals: Sequence[str],
    max_jets: int | None = 5000,
    batch_size: int = 512,
    device: str = "cpu",
    plots: bool = True,
    progress: bool = True,
) -> dict:
    """Load a run, read the files with its preprocessing, write :func:`latent_analysis` into the run dir."""
    from ..train import load_run

    model, config = load_run(run_dir, device=resolve_device(device))
    data_cfg = (config or {}).get("data") or {}
    bname, bpath = parse_sample_arg(str(background))
    bkg = load_sample(bpath, data_cfg, bname, max_jets)
    sigs = []
    for s in signals:
        n, p = parse_sample_arg(str(s))
        sigs.append(load_sample(p, data_cfg, n, max_jets))
    return latent_analysis(
        model, config, bkg, sigs, run_dir, batch_size=batch_size, plots=plots, progress=progress
    )
