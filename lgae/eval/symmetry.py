"""Symmetry discovery with the plain VAE (after V. Sanz, arXiv:2504.05174): ``lgae discover``.

For each toy dataset and seed, :func:`discover` trains lgae's registered ``vae`` with the shared trainer
(:func:`lgae.train.train` on ``configs/symmetry/<dataset>.yaml``, ``trainer.seed`` and ``data.toy.seed`` set
to the seed), measures the relevance of its latent directions on the held-out validation split
(:func:`lgae.eval.relevance.model_relevance`) and writes, into ``out``:

``summary.md`` / ``summary.json``
    per dataset: input dim, latent dim, the expected intrinsic dimension, and per seed the number of relevant
    latent *axes* (dataset-averaged KL > 0.1 nats) and the *local dimension* (the most common number of
    locally encoded directions, :func:`lgae.eval.relevance.local_relevance`); how many seeds match the
    expectation.
``relevance_<dataset>.png``
    KL per latent axis and the local spectrum, ordered by decreasing relevance (mean and per seed).
``relevance_2d.png``
    the 2-D toys overlaid (D^2D plane vs D^1D circle, and the annulus).
``activation_map_<dataset>.png``
    2-D toys: the mean latent activation ``mu`` of the two most relevant directions over the (x1, x2) plane.
``activations_<dataset>.png``
    the mean activation of every latent (by relevance) vs each input feature, and vs the generator's own
    variables (polar angle and radius; cos theta and phi; m, Y, cos theta*, phi*).
``runs/<dataset>/seed<k>/``
    the run directories (config, checkpoints, metrics); a finished run is reused when ``lgae discover`` runs
    again.

The match criterion is the local dimension, not the axis count: a circle (sphere) cannot be embedded in one
(two) latent axes without a seam, and the VAE encodes it as a latent circle (sphere) spanning two (three)
axes, with one (two) locally relevant directions. ``docs/symmetry.md`` has the reasoning and the measured
numbers.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from ..data.toys import TWO_D, generator_variables

__all__ = [
    "DEFAULT_DATASETS",
    "DEFAULT_SEEDS",
    "QUICK_OVERRIDES",
    "config_dir",
    "run_seed",
    "discover",
    "summarise",
    "write_summary",
]

DEFAULT_DATASETS = ("plane", "circle", "annulus", "ee_mumu", "pp_dimuon")
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
#: ``--quick``: 6000 events, ~4800 steps at a higher learning rate (~5 min for the default study, 2 cores)
QUICK_OVERRIDES = ("data.toy.n=6000", "trainer.epochs=30", "trainer.batch_size=32", "trainer.lr=3.0e-3")


def config_dir() -> Path:
    """``configs/symmetry`` of the source tree this package lives in."""
    return Path(__file__).resolve().parents[2] / "configs" / "symmetry"


def _config_path(dataset: str, cdir: Path | None) -> Path:
    from .._validate import ConfigError

    cdir = Path(cdir) if cdir is not None else config_dir()
    path = cdir / f"{dataset}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in cdir.glob("*.yaml")) if cdir.is_dir() else []
        raise ConfigError(
            f"no config for dataset {dataset!r}: {path} does not exist (have: {', '.join(have) or 'none'})"
        )
    return path


# ---------------------------------------------------------------------------------------------------- one run
def run_seed(
    dataset: str,
    seed: int,
    out: str | Path,
    *,
    quick: bool = False,
    cdir: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = True,
    keep_arrays: bool = False,
) -> dict:
    """Train (or reuse) one VAE with the shared trainer and measure its relevance.

    Returns a JSON-able dict: ``dataset``, ``seed``, ``run_dir``, ``input_dim``, ``latent_dim``, ``expected``,
    ``generator``, ``kl``/``var_mu``/``one_minus_sigma2`` (per latent, in relevance order), ``order``,
    ``n_relevant`` (axes), ``spectrum`` (mean local g), ``dim_counts``, ``n_local``, ``frac_at_n_local``,
    ``best_val_loss``, ``epochs``, ``train_time_s``. With ``keep_arrays`` also ``_x``, ``_mu``, ``_meta`` and
    ``_model`` (for plots).
    """
    from ..data import build_datasets
    from ..data.toys import make_toy
    from ..train import load_run, resolve_config, train
    from .relevance import model_relevance

    out = Path(out)
    run_dir = out / "runs" / dataset / f"seed{seed}"
    ovr = [
        f"trainer.seed={seed}",
        f"data.toy.seed={seed}",
        "trainer.progress=false",
        *(QUICK_OVERRIDES if quick else ()),
        *overrides,
        f"trainer.out={run_dir}",
    ]
    cfg = resolve_config(_config_path(dataset, cdir), ovr)
    t0 = time.perf_counter()
    train(cfg, run_dir, resume=resume)
    train_time = time.perf_counter() - t0
    model, _ = load_run(run_dir, "last")  # the converged model (see the module docstring)

    x_val = build_datasets(cfg["data"], seed).val[0]  # the held-out split of the training run
    # the sample's metadata (standardisation, degrees of freedom); the data layer's bundle does not carry it
    spec = dict(cfg["data"]["toy"])
    _, meta = make_toy(spec.pop("name"), spec.pop("n"), spec.pop("seed", seed), **spec)
    rel = model_relevance(model, x_val)
    order = rel["order"]
    loc = rel["local"]
    run_info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    res = {
        "dataset": dataset,
        "seed": int(seed),
        "run_dir": str(run_dir),
        "input_dim": int(x_val.shape[1]),
        "latent_dim": int(model.latent_dim()),
        "beta": float(model.beta),
        "expected": meta.get("intrinsic_dim"),
        "dof": meta.get("dof"),
        "generator": meta.get("generator"),
        "feature_names": meta["feature_names"],
        "dropped": meta.get("dropped", []),
        "n_eval": int(x_val.shape[0]),
        "order": [int(i) for i in order],
        "kl": [float(v) for v in rel["kl"][order]],
        "var_mu": [float(v) for v in rel["var_mu"][order]],
        "one_minus_sigma2": [float(v) for v in rel["one_minus_sigma2"][order]],
        "kl_threshold": rel["threshold"],
        "n_relevant": rel["n_relevant"],
        "spectrum": [float(v) for v in loc["spectrum"]],
        "local_threshold": loc["threshold"],
        "dim_counts": [int(v) for v in loc["dim_counts"]],
        "n_local": loc["n_local"],
        "frac_at_n_local": loc["frac_at_n_local"],
        "best_val_loss": run_info.get("best_val_loss"),
        "epochs": run_info.get("epochs_completed"),
        "train_time_s": round(train_time, 1),
    }
    if keep_arrays:
        res["_x"], res["_mu"], res["_meta"], res["_model"] = x_val.numpy(), rel["mu"], meta, model
    return res


# ---------------------------------------------------------------------------------------------------- summary
def _public(r: dict) -> dict:
    return {k: v for k, v in r.items() if not k.startswith("_")}


def summarise(results: dict[str, list[dict]]) -> dict:
    """Per-dataset summary of :func:`run_seed` results (what ``summary.json`` holds)."""
    out = {}
    for ds, runs in results.items():
        if not runs:
            continue
        exp = runs[0]["expected"]
        n_local = [r["n_local"] for r in runs]
        out[ds] = {
            "input_dim": runs[0]["input_dim"],
            "latent_dim": runs[0]["latent_dim"],
            "beta": runs[0]["beta"],
            "generator": runs[0]["generator"],
            "expected_intrinsic_dim": exp,
            "dof": runs[0]["dof"],
            "dropped_features": runs[0]["dropped"],
            "seeds": [r["seed"] for r in runs],
            "n_relevant_axes": [r["n_relevant"] for r in runs],
            "n_local": n_local,
            "n_match": int(sum(n == exp for n in n_local)) if exp is not None else None,
            "n_seeds": len(runs),
            "kl_mean": np.mean([r["kl"] for r in runs], axis=0).tolist(),
            "spectrum_mean": np.mean([r["spectrum"] for r in runs], axis=0).tolist(),
            "runs": [_public(r) for r in runs],
        }
    return out


def _fmt_list(v) -> str:
    return " ".join(str(i) for i in v)


def write_summary(summary: dict, out: Path, figures: Iterable[str], command: str = "") -> tuple[Path, Path]:
    """Write ``summary.json`` and ``summary.md`` (atomically)."""
    from ..train.checkpoint import atomic_write_text

    out = Path(out)
    js = out / "summary.json"
    atomic_write_text(
        js, json.dumps({"command": command, "datasets": summary, "figures": sorted(figures)}, indent=1) + "\n"
    )
    lines = [
        "# Symmetry discovery with the plain VAE",
        "",
        f"Command: `{command}`" if command else "",
        "",
        "Relevant axes: latent axes with dataset-averaged KL > "
        f"{_first(summary, 'kl_threshold'):.2g} nats. Local dim: the most common number of locally encoded "
        f"directions (posterior signal-to-noise g > {_first(summary, 'local_threshold'):.3g}), the measured "
        "intrinsic dimension. Matches: seeds whose local dim equals the expected intrinsic dimension.",
        "",
        "| dataset | input dim | latent dim | beta | relevant axes per seed | local dim per seed | expected "
        "| matches |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for ds, s in summary.items():
        match = f"{s['n_match']}/{s['n_seeds']}" if s["n_match"] is not None else "-"
        lines.append(
            f"| {ds} | {s['input_dim']} | {s['latent_dim']} | {s['beta']:g} | "
            f"{_fmt_list(s['n_relevant_axes'])} | "
            f"{_fmt_list(s['n_local'])} | {s['expected_intrinsic_dim']} | {match} |"
        )
    lines += [
        "",
        "Mean over seeds, in decreasing relevance:",
        "",
        "| dataset | KL per axis (nats) | local spectrum g |",
        "|---|---|---|",
    ]
    for ds, s in summary.items():
        lines.append(
            f"| {ds} | {_fmt_list(f'{v:.3g}' for v in s['kl_mean'])} | "
            f"{_fmt_list(f'{v:.3g}' for v in s['spectrum_mean'])} |"
        )
    if "plane" in summary and "circle" in summary:
        p2, c2 = summary["plane"]["spectrum_mean"][1], summary["circle"]["spectrum_mean"][1]
        lines += [
            "",
            f"Second local direction: plane {p2:.3g}, circle {c2:.3g} (ratio {c2 / p2:.2g}); second axis "
            f"KL: plane {summary['plane']['kl_mean'][1]:.3g}, "
            f"circle {summary['circle']['kl_mean'][1]:.3g} nats.",
        ]
    notes = []
    for ds, s in summary.items():
        g = s["generator"]
        notes.append(
            f"- {ds}: generator {g}; degrees of freedom {s['dof']['free'] if s['dof'] else '?'}"
            + (f"; dropped constant features {s['dropped_features']}" if s["dropped_features"] else "")
        )
    lines += ["", "Datasets:", "", *notes, "", "Figures: " + ", ".join(f"`{f}`" for f in sorted(figures)), ""]
    md = out / "summary.md"
    atomic_write_text(md, "\n".join(lines))
    return md, js


def _first(summary: dict, key: str) -> float:
    for s in summary.values():
        for r in s["runs"]:
            return r[key]
    return float("nan")


# ------------------------------------------------------------------------------------------------------ plots
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_relevance(runs_by_ds: dict[str, list[dict]], path: Path, title: str) -> Path:
    """KL per axis (log scale) and the local spectrum, ordered by relevance: mean bars, per-seed dots."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    n = len(runs_by_ds)
    width = 0.8 / max(n, 1)
    for k, (ds, runs) in enumerate(runs_by_ds.items()):
        for ax, key in zip(axes, ("kl", "spectrum")):
            vals = np.array([r[key] for r in runs])
            idx = np.arange(vals.shape[1]) + (k - (n - 1) / 2) * width
            ax.bar(idx, vals.mean(0), width=width, alpha=0.6, label=f"{ds} (expected {runs[0]['expected']})")
            for row in vals:
                ax.plot(idx, row, "k.", ms=3)
    thr_kl, thr_g = (
        next(iter(runs_by_ds.values()))[0]["kl_threshold"],
        next(iter(runs_by_ds.values()))[0]["local_threshold"],
    )
    for ax, thr, lab in (
        (axes[0], thr_kl, "KL per latent axis (nats)"),
        (axes[1], thr_g, "local spectrum g (mean over events)"),
    ):
        ax.axhline(thr, color="r", ls="--", lw=1, label=f"threshold {thr:.2g}")
        ax.set_yscale("log")
        ax.set_ylim(1e-4, None)
        ax.set_xlabel("latent direction (decreasing relevance)")
        ax.set_ylabel(lab)
        d = max(len(r[0]["kl"]) for r in runs_by_ds.values())
        ax.set_xticks(range(d), [f"z{i + 1}" for i in range(d)])
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_activation_map(r: dict, path: Path) -> Path:
    """2-D toys: mean latent activation of the two most relevant axes over the (x1, x2) plane (data overlaid),
    and the latent polar angle ``atan2(<z2>, <z1>)`` along the data's polar angle (how the latent orders the
    points)."""
    import torch

    from .relevance import encode

    plt = _plt()
    x, model = r["_x"], r["_model"]
    lim = 1.15 * np.abs(x).max()
    g = np.linspace(-lim, lim, 121)
    gx, gy = np.meshgrid(g, g)
    grid = np.stack([gx.ravel(), gy.ravel()], 1)
    mu, _ = encode(model, torch.as_tensor(grid, dtype=torch.float32))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for k, ax in enumerate(axes[:2]):
        j = r["order"][k]
        im = ax.pcolormesh(gx, gy, mu[:, j].reshape(gx.shape), cmap="coolwarm", shading="auto")
        ax.scatter(x[:2000, 0], x[:2000, 1], s=0.5, c="k", alpha=0.3)
        ax.set_title(f"<z{k + 1}> (latent {j}, KL {r['kl'][k]:.2f} nats)")
        ax.set_xlabel(r["feature_names"][0] + " (standardised)")
        ax.set_ylabel(r["feature_names"][1] + " (standardised)")
        ax.set_aspect("equal")
        fig.colorbar(im, ax=ax)
    t = generator_variables(x, r["_meta"])["t (polar angle)"]
    m = r["_mu"]
    axes[2].scatter(t, np.arctan2(m[:, r["order"][1]], m[:, r["order"][0]]), s=1, alpha=0.4)
    axes[2].set_xlabel("data polar angle t")
    axes[2].set_ylabel("latent polar angle atan2(<z2>, <z1>)")
    axes[2].set_title("ordering along the data")
    fig.suptitle(f"{r['dataset']} (seed {r['seed']}): mean latent activation over the input plane")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _binned_mean(v: np.ndarray, y: np.ndarray, bins: int = 30) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.percentile(v, [0.5, 99.5])
    edges = np.linspace(lo, hi, bins + 1)
    idx = np.clip(np.digitize(v, edges) - 1, 0, bins - 1)
    cnt = np.bincount(idx, minlength=bins)
    s = np.bincount(idx, weights=y, minlength=bins)
    mid = 0.5 * (edges[1:] + edges[:-1])
    ok = cnt > 0
    return mid[ok], s[ok] / cnt[ok]


def plot_activations(r: dict, path: Path) -> Path:
    """Mean activation of every latent (by relevance) vs each input feature and each generator variable."""
    plt = _plt()
    x, mu = r["_x"], r["_mu"]
    variables = {f"{n} (std.)": x[:, j] for j, n in enumerate(r["feature_names"])}
    variables.update(generator_variables(x, r["_meta"]))
    variables = {k: v for k, v in variables.items() if np.ptp(v) > 1e-9 * max(1.0, np.abs(v).max())}
    n = len(variables)
    ncol = min(4, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.8 * nrow), squeeze=False)
    for ax, (name, v) in zip(axes.ravel(), variables.items()):
        for k, j in enumerate(r["order"]):
            xs, ys = _binned_mean(v, mu[:, j])
            rel = r["kl"][k] > r["kl_threshold"]
            ax.plot(xs, ys, "-" if rel else ":", lw=1.5 if rel else 0.8, label=f"z{k + 1}")
        ax.set_xlabel(name)
        ax.set_ylabel("mean activation <mu>")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{r['dataset']} (seed {r['seed']}): mean latent activations (solid: relevant axes)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -------------------------------------------------------------------------------------------------- the study
def discover(
    datasets: Sequence[str] = DEFAULT_DATASETS,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    out: str | Path = "runs/discover",
    *,
    quick: bool = False,
    cdir: str | Path | None = None,
    overrides: Sequence[str] = (),
    resume: bool = True,
    plots: bool = True,
    command: str = "",
    log=print,
) -> dict:
    """Train, measure and report every dataset over every seed (see the module docstring).

    Returns the summary (what ``summary.json`` holds under ``datasets``).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for ds in datasets:  # fail before any training on a missing config
        _config_path(ds, cdir)
    results: dict[str, list[dict]] = {}
    figures: list[str] = []
    for ds in datasets:
        runs = []
        for s in seeds:
            r = run_seed(
                ds,
                s,
                out,
                quick=quick,
                cdir=cdir,
                overrides=overrides,
                resume=resume,
                keep_arrays=plots and s == seeds[0],
            )
            log(
                f"{ds} seed {s}: relevant axes {r['n_relevant']}, local dim {r['n_local']} "
                f"({100 * r['frac_at_n_local']:.0f}% of events), expected {r['expected']}; "
                f"KL {np.round(r['kl'], 3).tolist()}, g {np.round(r['spectrum'], 3).tolist()} "
                f"[{r['train_time_s']:.0f} s]"
            )
            runs.append(r)
        results[ds] = runs
        if plots:
            first = runs[0]
            figures.append(
                plot_relevance(
                    {ds: runs}, out / f"relevance_{ds}.png", f"{ds}: relevance over {len(runs)} seeds"
                ).name
            )
            if ds in TWO_D:
                figures.append(plot_activation_map(first, out / f"activation_map_{ds}.png").name)
            figures.append(plot_activations(first, out / f"activations_{ds}.png").name)
            for key in ("_x", "_mu", "_meta", "_model"):
                first.pop(key, None)
    two_d = {ds: results[ds] for ds in TWO_D if ds in results}
    if plots and len(two_d) >= 2:
        figures.append(
            plot_relevance(
                two_d, out / "relevance_2d.png", "D^2D plane vs D^1D circle (and the annulus)"
            ).name
        )
    summary = summarise(results)
    md, _ = write_summary(summary, out, figures, command)
    log(f"wrote {md} and {out / 'summary.json'}")
    return summary
