"""Plots of the evaluator, the comparison report and the latent-space analysis (matplotlib, Agg backend, PNG).

ROC curves follow the HEP convention: background rejection ``1 / eps_b`` on a log axis against the signal
efficiency ``eps_s``; the plain ROC (``eps_s`` against ``eps_b``, log x) is drawn beside it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .metrics import roc_curve

#: alternative scores drawn in the per-signal ROC figures (all of them are in metrics.json)
MAX_ALTERNATIVES = 6
_COLORS = [
    "#3f90da",
    "#ffa90e",
    "#bd1f01",
    "#94a4a2",
    "#832db6",
    "#a96b59",
    "#e76300",
    "#b9ac70",
    "#717581",
    "#92dadd",
]


def _plt():
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline"):
        with contextlib.suppress(Exception):
            matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def style():
    """mplhep's CMS-like style when available (else matplotlib defaults), with moderate font sizes."""
    plt = _plt()
    ctx = []
    try:
        import mplhep

        ctx.append(mplhep.style.CMS)
    except Exception:  # noqa: BLE001 - mplhep optional for plotting
        pass
    ctx.append(
        {
            "font.size": 13,
            "axes.labelsize": 14,
            "legend.fontsize": 10,
            "xtick.labelsize": 12,
            "ytick.labelsize": 12,
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.titlesize": 14,
        }
    )
    with plt.style.context(ctx):
        yield plt


def _save(fig, path: Path, margins: dict | None = None) -> str:
    """Save with fixed margins (a layout engine would draw the figure twice: plots are most of an evaluation's
    time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_axes = len(fig.axes)
    default = (
        {"left": 0.07, "right": 0.985, "bottom": 0.12, "top": 0.9, "wspace": 0.22}
        if n_axes == 2
        else {"left": 0.14, "right": 0.97, "bottom": 0.13, "top": 0.92}
    )
    fig.subplots_adjust(**(margins or default))
    fig.savefig(path)
    _plt().close(fig)
    return str(path)


def _roc_panels(ax_rej, ax_roc, eps_b, eps_s, label, color, ls="-", lw=2.0):
    keep = eps_b > 0
    ax_rej.plot(eps_s[keep], 1.0 / eps_b[keep], ls=ls, lw=lw, color=color, label=label)
    ax_roc.plot(eps_b, eps_s, ls=ls, lw=lw, color=color, label=label)


def _decorate_rej(ax, n_bkg: int | None = None):
    ax.set_yscale("log")
    ax.set_xlabel(r"Signal efficiency $\varepsilon_s$")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_b$")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=1)
    x = np.linspace(1e-3, 1, 200)
    ax.plot(x, 1 / x, ls=":", color="gray", lw=1, label="random")
    if n_bkg:
        ax.axhline(n_bkg / 10.0, color="gray", lw=0.8, ls="--")
        ax.text(
            0.03,
            n_bkg / 10.0,
            r"$n_b\,\varepsilon_b = 10$ (unresolved above)",
            ha="left",
            va="bottom",
            fontsize=9,
            color="gray",
            transform=ax.get_yaxis_transform(),
        )
    ax.legend(loc="upper right", frameon=False)
    ax.grid(alpha=0.3, which="both")


def _decorate_roc(ax):
    ax.set_xscale("log")
    ax.set_xlabel(r"Background efficiency $\varepsilon_b$")
    ax.set_ylabel(r"Signal efficiency $\varepsilon_s$")
    x = np.logspace(-4, 0, 200)
    ax.plot(x, x, ls=":", color="gray", lw=1, label="random")
    ax.set_xlim(left=1e-4, right=1)
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper left", frameon=False)
    ax.grid(alpha=0.3, which="both")


def roc_figure(curves: Sequence[dict], path, title: str | None = None, n_bkg: int | None = None) -> str:
    """Two-panel ROC figure.

    ``curves``: dicts with ``bkg``, ``sig`` (score arrays), ``label`` and optional ``ls``, ``color``, ``lw``.
    """
    with style() as plt:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(13, 5.8))
        for i, c in enumerate(curves):
            eb, es, _ = roc_curve(c["bkg"], c["sig"])
            _roc_panels(
                a1,
                a2,
                eb,
                es,
                c["label"],
                c.get("color", _COLORS[i % len(_COLORS)]),
                c.get("ls", "-"),
                c.get("lw", 2.0),
            )
        _decorate_rej(a1, n_bkg)
        _decorate_roc(a2)
        if n_bkg:
            a2.set_xlim(left=min(1e-4, 0.5 / n_bkg))
        if title:
            fig.suptitle(title)
        return _save(fig, path)


def score_histograms(
    scores_by_class: Mapping[str, np.ndarray], path, xlabel: str, title: str | None = None
) -> str:
    """Normalised histograms of a score per class, log y; log-spaced bins when the score is positive and spans
    more than two decades."""
    vals = np.concatenate([np.asarray(v, float) for v in scores_by_class.values()])
    vals = vals[np.isfinite(vals)]
    with style() as plt:
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        if vals.size:
            lo, hi = np.percentile(vals, [0.1, 99.9])
            if hi <= lo:
                lo, hi = vals.min() - 0.5, vals.max() + 0.5
            logx = lo > 0 and hi / lo > 100
            bins = np.logspace(np.log10(lo), np.log10(hi), 60) if logx else np.linspace(lo, hi, 60)
            for i, (name, v) in enumerate(scores_by_class.items()):
                v = np.asarray(v, float)
                v = np.clip(v[np.isfinite(v)], bins[0], bins[-1])
                ax.hist(
                    v,
                    bins=bins,
                    histtype="step",
                    lw=2,
                    density=True,
                    color=_COLORS[i % len(_COLORS)],
                    label=f"{name} ({v.size})",
                )
            if logx:
                ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("Density (a.u.)")
        ax.legend(frameon=False)
        if title:
            ax.set_title(title)
        return _save(fig, path)


def mass_reconstruction(
    arrays: Mapping[str, Mapping[str, np.ndarray]], path, title: str | None = None
) -> str:
    """Input (filled) vs reconstructed (line) jet-mass distributions per class."""
    allm = np.concatenate([np.r_[a["mass_in"], a["mass_out"]] for a in arrays.values()])
    allm = allm[np.isfinite(allm)]
    hi = float(np.percentile(allm, 99.5)) if allm.size else 1.0
    bins = np.linspace(0, max(hi, 1e-9) * 1.05, 50)
    with style() as plt:
        fig, ax = plt.subplots(figsize=(7.5, 5.5))
        for i, (name, a) in enumerate(arrays.items()):
            c = _COLORS[i % len(_COLORS)]
            ax.hist(
                np.clip(a["mass_in"], 0, bins[-1]),
                bins=bins,
                histtype="stepfilled",
                alpha=0.25,
                color=c,
                density=True,
                label=f"{name} input",
            )
            ax.hist(
                np.clip(a["mass_out"], 0, bins[-1]),
                bins=bins,
                histtype="step",
                lw=2,
                color=c,
                density=True,
                label=f"{name} reconstructed",
            )
        ax.set_xlabel(r"Jet mass $m_J$ [GeV]")
        ax.set_ylabel("Density (a.u.)")
        ax.legend(frameon=False, ncol=2)
        if title:
            ax.set_title(title)
        return _save(fig, path)


def _split(arrays: Mapping, key: str, names: Sequence[str]):
    label = np.asarray(arrays["label"])
    v = np.asarray(arrays[key], float)
    return v[label == 0], {n: v[label == i + 1] for i, n in enumerate(names)}


def evaluation_plots(out_dir, result: Mapping, arrays: Mapping, recon_arrays: Mapping | None) -> list[str]:
    """All PNGs of one evaluation: overview ROC, per-signal ROCs with alternatives and baselines, histograms,
    jet-mass reconstruction."""
    out_dir = Path(out_dir)
    names = list(result["signals"])
    primary = result["primary_score"]
    bname = result["background"]
    model = (result.get("model_info") or {}).get("model", "model")
    n_bkg = int(result["n_bkg"])
    files = []
    bkg, sig = _split(arrays, "score", names)
    # overview: primary score, every signal and combined
    curves = [
        {"bkg": bkg, "sig": sig[n], "label": f"{n} (AUC {result['per_signal'][n]['auc']:.3f})"} for n in names
    ]
    if len(names) > 1:
        allsig = np.concatenate([sig[n] for n in names])
        curves.append(
            {
                "bkg": bkg,
                "sig": allsig,
                "label": f"combined (AUC {result['combined']['auc']:.3f})",
                "color": "black",
                "ls": "--",
            }
        )
    files.append(
        roc_figure(curves, out_dir / "roc.png", f"{model}: score '{primary}', background {bname}", n_bkg)
    )
    # per signal (and combined): primary, alternatives (thin), baselines (dashed)
    others = [k for k in result["score_names"] if k != primary][:MAX_ALTERNATIVES]
    bases = [k for k in ("jet_mass", "sd_mass") if k in (result.get("baselines") or {})]
    targets = names + (["combined"] if len(names) > 1 else [])
    for t in targets:

        def pick(key, t=t):
            b, s = _split(arrays, key, names)
            return b, (np.concatenate([s[n] for n in names]) if t == "combined" else s[t])

        m = result["combined"] if t == "combined" else result["per_signal"][t]
        b, s = pick("score")
        curves = [
            {"bkg": b, "sig": s, "label": f"{primary} (AUC {m['auc']:.3f})", "color": "black", "lw": 2.5}
        ]
        for i, k in enumerate(others):
            b, s = pick(f"score_{k}")
            mk = result["scores"][k]
            a = (mk["combined"] if t == "combined" else mk["per_signal"][t])["auc"]
            curves.append(
                {
                    "bkg": b,
                    "sig": s,
                    "label": f"{k} (AUC {a:.3f})",
                    "lw": 1.2,
                    "color": _COLORS[i % len(_COLORS)],
                }
            )
        for k in bases:
            if f"baseline_{k}" not in arrays:
                continue
            b, s = pick(f"baseline_{k}")
            mk = result["baselines"][k]
            a = (mk["combined"] if t == "combined" else mk["per_signal"][t])["auc"]
            curves.append(
                {
                    "bkg": b,
                    "sig": s,
                    "label": f"{k} (AUC {a:.3f})",
                    "ls": "--" if k == "jet_mass" else "-.",
                    "lw": 1.5,
                    "color": "gray" if k == "jet_mass" else "dimgray",
                }
            )
        files.append(roc_figure(curves, out_dir / f"roc_{_safe(t)}.png", f"{model}: {t} vs {bname}", n_bkg))
    # score histograms
    by_class = {bname: bkg, **sig}
    files.append(score_histograms(by_class, out_dir / "score_hist.png", f"Anomaly score '{primary}'", model))
    if "baseline_jet_mass" in arrays:
        b, s = _split(arrays, "baseline_jet_mass", names)
        files.append(
            score_histograms(
                {bname: b, **s}, out_dir / "jet_mass_hist.png", r"Jet mass $m_J$ [GeV]", "input jets"
            )
        )
    if recon_arrays:
        files.append(
            mass_reconstruction(recon_arrays, out_dir / "recon_jet_mass.png", f"{model}: reconstruction")
        )
    return files


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in str(name))


def scatter_2d(
    points: Mapping[str, np.ndarray],
    path,
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    diagonal: bool = False,
    logxy: bool = False,
    max_points: int = 3000,
) -> str:
    """Scatter plot of ``(n, 2)`` point sets per class (subsampled to ``max_points`` each)."""
    rng = np.random.default_rng(0)
    with style() as plt:
        fig, ax = plt.subplots(figsize=(7, 6))
        lo, hi = math.inf, -math.inf
        for i, (name, p) in enumerate(points.items()):
            p = np.asarray(p, float)
            if p.shape[0] > max_points:
                p = p[rng.choice(p.shape[0], max_points, replace=False)]
            ax.scatter(
                p[:, 0], p[:, 1], s=4, alpha=0.4, color=_COLORS[i % len(_COLORS)], label=name, rasterized=True
            )
            if p.size:
                lo, hi = min(lo, np.nanmin(p)), max(hi, np.nanmax(p))
        if diagonal and math.isfinite(lo):
            ax.plot([lo, hi], [lo, hi], color="gray", ls=":", lw=1)
        if logxy:
            ax.set_xscale("symlog")
            ax.set_yscale("symlog")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.legend(frameon=False, markerscale=4)
        if title:
            ax.set_title(title)
        return _save(fig, path)


def bar_chart(
    values: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    path,
    ylabel: str,
    title: str | None = None,
    logy: bool = False,
    reference: float | None = None,
) -> str:
    """Grouped bar chart: one group per label, one bar per series in ``values``."""
    with style() as plt:
        fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels) + 3), 5))
        n = max(len(values), 1)
        w = 0.8 / n
        x = np.arange(len(labels))
        for i, (name, v) in enumerate(values.items()):
            ax.bar(x + (i - (n - 1) / 2) * w, v, width=w, color=_COLORS[i % len(_COLORS)], label=name)
        if reference is not None:
            ax.axhline(reference, color="gray", ls=":", lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels(
            labels, rotation=45 if len(labels) > 8 else 0, ha="right" if len(labels) > 8 else "center"
        )
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        if len(values) > 1:
            ax.legend(frameon=False)
        if title:
            ax.set_title(title)
        return _save(
            fig, path, {"left": 0.1, "right": 0.98, "bottom": 0.3 if len(labels) > 8 else 0.15, "top": 0.9}
        )
