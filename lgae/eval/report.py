"""``lgae compare``: a side-by-side report of evaluated runs (Markdown table, JSON, ROC overlays).

Runs of the same config name and task that differ only in their seed (``runs/x/seed0``, ``runs/x/seed1``, ...
or the same ``name`` in ``config.yaml`` with different ``trainer.seed``) form one *group*; the report gives
mean +- standard deviation over the group's seeds (sample std, ``ddof = 1``). With a single seed the +- is the
run's own statistical uncertainty (bootstrap, else binomial / Hanley-McNeil) and is marked so.

Every run directory must have been evaluated (``metrics.json`` and ``scores.npz`` from ``lgae evaluate``).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .evaluate import write_json
from .metrics import eps_key

TASK_TITLES = {
    "standard": "Anomaly detection: trained on QCD, background = QCD, signals = new-physics-like jets",
    "inverse": "Inverse task: trained on top jets, background = top, signal = QCD (Finke et al. 2021)",
}


# ------------------------------------------------------------------------------------------------------------
# reading runs
# ------------------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        return yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        return {}


def read_run(run_dir: str | os.PathLike) -> dict:
    """Everything the report needs from one run directory (raises when it has not been evaluated)."""
    run_dir = Path(run_dir)
    metrics = _read_json(run_dir / "metrics.json")
    if not metrics:
        raise FileNotFoundError(
            f"{run_dir}: no metrics.json; evaluate it first: "
            f"lgae evaluate {run_dir} --background FILE --signal FILE"
        )
    config = _read_yaml(run_dir / "config.yaml")
    run = _read_json(run_dir / "run.json")
    info = dict(metrics.get("model_info") or {})
    name = config.get("name") or info.get("config_name") or metrics.get("name")
    if not name:
        name = run_dir.parent.name if re.fullmatch(r"seed\d+", run_dir.name) else run_dir.name
    seed = (config.get("trainer") or {}).get("seed", info.get("seed", run.get("seed")))
    return {
        "run_dir": str(run_dir),
        "name": str(name),
        "seed": seed,
        "task": metrics.get("task", "standard"),
        "metrics": metrics,
        "config": config,
        "run": run,
        "info": info,
    }


def group_runs(runs: Sequence[dict]) -> list[dict]:
    """Group runs by ``(task, name)`` keeping first-seen order; seeds sorted inside a group."""
    groups: dict[tuple[str, str], dict] = {}
    for r in runs:
        key = (r["task"], r["name"])
        g = groups.setdefault(key, {"name": r["name"], "task": r["task"], "runs": []})
        g["runs"].append(r)
    for g in groups.values():
        g["runs"].sort(key=lambda r: (r["seed"] is None, r["seed"] if isinstance(r["seed"], int) else 0))
        seeds = [r["seed"] for r in g["runs"]]
        dup = {s for s in seeds if seeds.count(s) > 1 and s is not None}
        if dup:
            dirs = [r["run_dir"] for r in g["runs"] if r["seed"] in dup]
            raise ValueError(f"runs of '{g['name']}' share seed(s) {sorted(dup)}: {dirs}; compare each once")
    return list(groups.values())


# ------------------------------------------------------------------------------------------------------------
# aggregation
# ------------------------------------------------------------------------------------------------------------


def _agg(values: Sequence[float], errs: Sequence[float | None]) -> dict:
    v = np.array([np.nan if x is None else x for x in values], dtype=float)
    v = v[np.isfinite(v)]
    n = int(v.size)
    out: dict[str, Any] = {"values": [float(x) for x in v], "n": n}
    if n == 0:
        out.update(mean=None, std=None, kind=None)
    elif n == 1:
        e = errs[0] if errs else None
        out.update(mean=float(v[0]), std=None if e is None else float(e), kind="stat")
    else:
        out.update(mean=float(v.mean()), std=float(v.std(ddof=1)), kind="seeds")
    return out


def _signal_entry(m: Mapping, signal: str) -> Mapping | None:
    if signal == "combined":
        return m.get("combined")
    return (m.get("per_signal") or {}).get(signal)


def aggregate_metrics(entries: Sequence[Mapping | None], targets: Sequence[float]) -> dict:
    """Mean/std over runs of AUC and eps_s for one signal; ``resolved`` only if every run resolved it."""
    entries = [e for e in entries if e]
    if not entries:
        return {}
    out = {
        "auc": _agg([e["auc"] for e in entries], [e.get("auc_err") for e in entries]),
        "n_sig": int(entries[0].get("n_sig", 0)),
        "n_bkg": int(entries[0].get("n_bkg", 0)),
        "below_chance": any(e.get("below_chance") for e in entries),
        "eps_s": {},
    }
    for t in targets:
        k = eps_key(t)
        es = [e["eps_s"].get(k) for e in entries if k in (e.get("eps_s") or {})]
        if not es:
            continue
        a = _agg([x["eps_s"] for x in es], [x.get("err") for x in es])
        a["resolved"] = all(x.get("resolved", False) for x in es)
        out["eps_s"][k] = a
    return out


def summarize_group(g: Mapping, targets: Sequence[float]) -> dict:
    runs = g["runs"]
    first = runs[0]
    m0, info0 = first["metrics"], first["info"]
    signals = list(m0.get("signals") or [])
    keys = signals + ["combined"]

    def mean_of(get):
        vals = []
        for r in runs:
            try:
                v = get(r)
            except (KeyError, TypeError):
                v = None
            if v is not None and isinstance(v, (int, float)) and math.isfinite(v):
                vals.append(float(v))
        return float(np.mean(vals)) if vals else None

    primary = m0.get("primary_score", "default")
    out = {
        "name": g["name"],
        "task": g["task"],
        "model": info0.get("model"),
        "primary_score": primary,
        "seeds": [r["seed"] for r in runs],
        "n_seeds": len(runs),
        "run_dirs": [r["run_dir"] for r in runs],
        "latent_dim": info0.get("latent_dim", first["run"].get("latent_dim")),
        "input_dim": info0.get("input_dim"),
        "compression": info0.get("compression"),
        "n_params": info0.get("n_params", first["run"].get("n_params")),
        "train_time_s": mean_of(lambda r: r["run"].get("total_train_time_s")),
        "epochs": mean_of(lambda r: r["run"].get("epochs_completed")),
        "train_jets_per_s": mean_of(lambda r: r["run"].get("mean_train_jets_per_s")),
        "eval_jets_per_s": mean_of(lambda r: r["metrics"]["timing"]["eval_jets_per_s"]),
        "background": m0.get("background"),
        "signals": signals,
        "files": m0.get("files"),
        "metrics": {},
        "warnings": sorted({w for r in runs for w in (r["metrics"].get("warnings") or [])}),
    }
    if out["compression"] is None and out["latent_dim"] and out["input_dim"]:
        out["compression"] = out["latent_dim"] / out["input_dim"]
    for s in keys:
        out["metrics"][s] = aggregate_metrics([_signal_entry(r["metrics"], s) for r in runs], targets)
    files = {json.dumps(r["metrics"].get("files"), sort_keys=True) for r in runs}
    out["same_test_files"] = len(files) == 1
    return out


def summarize_baselines(groups: Sequence[Mapping], targets: Sequence[float]) -> dict:
    """Reference observables (jet mass, ...) per task, from the first run of the task (they do not depend on
    the model, only on the test files)."""
    out: dict[str, dict] = {}
    for g in groups:
        if g["task"] in out:
            continue
        m = g["runs"][0]["metrics"]
        base = m.get("baselines") or {}
        signals = list(m.get("signals") or [])
        keys = signals + ["combined"]
        out[g["task"]] = {
            "source_run": g["runs"][0]["run_dir"],
            "files": m.get("files"),
            "observables": {
                name: {s: aggregate_metrics([_signal_entry(b, s)], targets) for s in keys}
                for name, b in base.items()
            },
        }
    return out


# ------------------------------------------------------------------------------------------------------------
# formatting
# ------------------------------------------------------------------------------------------------------------


def _fmt_val(a: Mapping | None, digits: int = 3, resolved: bool = True) -> str:
    if not a or a.get("mean") is None:
        return "–"
    s = f"{a['mean']:.{digits}f}"
    if a.get("std") is not None:
        s += f" ± {a['std']:.{digits}f}"
        if a.get("kind") == "stat":
            s += "*"
    if not resolved:
        s += " †"
    return s


def _fmt_eps(a: Mapping | None) -> str:
    if not a or a.get("mean") is None:
        return "–"
    m = a["mean"]
    digits = 3 if m >= 0.01 else 4
    return _fmt_val(a, digits, a.get("resolved", True))


def _fmt_num(x, fmt="{:.0f}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt.format(x)


def _fmt_params(n) -> str:
    if n is None:
        return "–"
    if n >= 1e6:
        return f"{n / 1e6:.2f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(int(n))


def _fmt_time(s) -> str:
    if s is None:
        return "–"
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.0f} s"


def _latent(g: Mapping) -> str:
    if g.get("latent_dim") is None:
        return "–"
    if g.get("compression") is None:
        return str(g["latent_dim"])
    return f"{g['latent_dim']} ({100 * g['compression']:.1f} %)"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def render_markdown(report: Mapping) -> str:
    targets = report["eps_b_targets"]
    eps_cols = [f"εs @ εb={t:g}" for t in targets]
    L = ["# lgae anomaly-detection report", ""]
    L.append(f"Generated {report['generated']} by `lgae compare` from {report['n_runs']} evaluated run(s).")
    L.append("")
    L.append("How to read the numbers:")
    L.append("")
    L += [
        "- **Score**: each model's primary anomaly score (`default`, higher = more anomalous) is fixed "
        "*a priori*; alternatives the model offers are in each run's `metrics.json`, never picked on the "
        "test set.",
        "- **AUC is never flipped**: an AUC below 0.5 is reported as is (the score ranks background above "
        "signal).",
        "- **εs @ εb**: signal efficiency at a fixed background efficiency, interpolated linearly in εb "
        "between the two ROC points around it. **†** = not resolved: fewer than 10 background jets pass "
        f"that cut (n_bkg · εb < {report['min_bkg_pass']}).",
        "- **±**: standard deviation over seeds (sample std) when a model has ≥ 2 seeds; with one seed, "
        "marked **\\***, the run's statistical uncertainty (bootstrap over jets, else binomial).",
        "- **latent (compression)**: real numbers in one jet's latent representation, and that number "
        "divided by the input size 4 × n_particles (E, px, py, pz of every particle slot; 120 for 30 "
        "particles). The LGAE paper divides by 90 (3 × 30) in places; our denominator is 120 throughout.",
        "- **train time / jets/s**: wall time of the training epochs (mean over seeds) and training "
        "throughput; eval jets/s is the scoring throughput.",
        "",
    ]
    for task, section in report["tasks"].items():
        L.append(f"## {TASK_TITLES.get(task, task)}")
        L.append("")
        groups = section["groups"]
        bkg = groups[0]["background"] if groups else "?"
        signals = groups[0]["signals"] if groups else []
        n_bkg = None
        for g in groups:
            c = g["metrics"].get("combined") or {}
            n_bkg = n_bkg or c.get("n_bkg")
        L.append(
            f"Background: **{bkg}** ({n_bkg} jets); signals: "
            + ", ".join(f"**{s}** ({(groups[0]['metrics'].get(s) or {}).get('n_sig', '?')})" for s in signals)
            + "."
        )
        L.append("")
        keys = list(groups[0]["metrics"]) if groups else []
        order = (["combined"] if "combined" in keys and len(signals) > 1 else []) + [
            k for k in keys if k != "combined"
        ]
        for s in order:
            title = "all signals combined" if s == "combined" else f"signal {s}"
            L.append(f"### {title}")
            L.append("")
            if s == order[0]:
                header = [
                    "model",
                    "score",
                    "latent (compression)",
                    "params",
                    "seeds",
                    "AUC",
                    *eps_cols,
                    "train time",
                    "train jets/s",
                    "eval jets/s",
                ]
            else:
                header = ["model", "seeds", "AUC", *eps_cols]
            rows = []
            for g in groups:
                m = g["metrics"].get(s) or {}
                vals = [_fmt_val(m.get("auc"))] + [
                    _fmt_eps((m.get("eps_s") or {}).get(eps_key(t))) for t in targets
                ]
                if s == order[0]:
                    rows.append(
                        [
                            f"**{g['name']}** ({g['model']})",
                            g["primary_score"],
                            _latent(g),
                            _fmt_params(g["n_params"]),
                            str(g["n_seeds"]),
                            *vals,
                            _fmt_time(g["train_time_s"]),
                            _fmt_num(g["train_jets_per_s"]),
                            _fmt_num(g["eval_jets_per_s"]),
                        ]
                    )
                else:
                    rows.append([f"**{g['name']}** ({g['model']})", str(g["n_seeds"]), *vals])
            base = (section.get("baselines") or {}).get("observables") or {}
            for bname, per in base.items():
                m = per.get(s) or {}
                vals = [_fmt_val(m.get("auc"))] + [
                    _fmt_eps((m.get("eps_s") or {}).get(eps_key(t))) for t in targets
                ]
                if s == order[0]:
                    rows.append(
                        [f"*{bname}* (baseline, no training)", bname, "–", "–", "–", *vals, "–", "–", "–"]
                    )
                else:
                    rows.append([f"*{bname}* (baseline, no training)", "–", *vals])
            L += _table(header, rows)
            L.append("")
            png = section.get("plots", {}).get(s)
            if png:
                L.append(f"![ROC {title}]({png})")
                L.append("")
        notes = [g for g in groups if not g.get("same_test_files", True)]
        if notes:
            L.append(
                "Note: the seeds of "
                + ", ".join(g["name"] for g in notes)
                + " were evaluated on different test files."
            )
            L.append("")
        warn = sorted({w for g in groups for w in g.get("warnings", [])})
        if warn:
            L.append("Below-chance primary scores (AUC < 0.5, reported as is):")
            L.append("")
            L += [f"- {w}" for w in warn]
            L.append("")
    if "standard" in report["tasks"]:
        L += _published_reference()
    L.append("## Runs")
    L.append("")
    for task, section in report["tasks"].items():
        for g in section["groups"]:
            L.append(f"- {g['name']} ({task}): " + ", ".join(f"`{d}`" for d in g["run_dirs"]))
    L.append("")
    return "\n".join(L)


#: the LGAE paper's anomaly-detection table (Hao et al., EPJC 2023; JetNet-30, one seed; anchors.md §B.1)
PUBLISHED = (
    ("LGAE-Mix, τ=2", "0.8023", "0.6178", "0.1662", "0.0250"),
    ("LGAE-Min-Max, τ=4", "0.7627", "0.5832", "0.1305", "0.0007"),
    ("GNNAE-PL, 2×30", "0.8195", "0.4435", "0.0564", "0.0042"),
    ("GNNAE-JL, 80", "0.7006", "0.2240", "0.0239", "0.0010"),
    ("CNNAE, 55", "0.7700", "0.2473", "0.0469", "0.0053"),
)


def _published_reference() -> list[str]:
    L = ["## Published reference (context only, not comparable)", ""]
    L.append(
        "The LGAE paper's table (Hao et al., EPJC 83 (2023), JetNet-30 jets, single seed, no uncertainties). "
        "Different data (JetNet, not our Pythia samples), a signal the caption does not name, AUCs computed "
        "with label flipping (max(AUC, 1 - AUC)) and εs read at the first ROC point with εb ≥ target; "
        "shown for orientation only."
    )
    L.append("")
    L += _table(["model (paper)", "AUC", "εs @ εb=0.1", "εs @ εb=0.01", "εs @ εb=0.001"], PUBLISHED)
    L.append("")
    return L


# ------------------------------------------------------------------------------------------------------------
# ROC overlays
# ------------------------------------------------------------------------------------------------------------


def _load_scores(run_dir: str) -> dict:
    with np.load(Path(run_dir) / "scores.npz", allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def roc_overlays(section: Mapping, groups_raw: Sequence[Mapping], out_dir: Path, task: str) -> dict:
    """One PNG per signal (and combined): the first seed of every group plus the jet-mass baseline."""
    from .plots import roc_figure

    loaded = []
    for g in groups_raw:
        try:
            loaded.append((g, _load_scores(g["runs"][0]["run_dir"])))
        except FileNotFoundError:
            continue
    if not loaded:
        return {}
    names0 = [str(x) for x in loaded[0][1]["signal_names"].reshape(-1)]
    keys = names0 + (["combined"] if len(names0) > 1 else [])
    files = {}
    for s in keys:
        curves = []
        n_bkg = None
        for g, z in loaded:
            names = [str(x) for x in z["signal_names"].reshape(-1)]
            label = z["label"]
            if s != "combined" and s not in names:
                continue
            sel = (label >= 1) if s == "combined" else (label == names.index(s) + 1)
            b, sg = z["score"][label == 0], z["score"][sel]
            n_bkg = n_bkg or int(b.size)
            from .metrics import auc as _auc

            curves.append({"bkg": b, "sig": sg, "label": f"{g['name']} (AUC {_auc(b, sg, warn=False):.3f})"})
        z = loaded[0][1]
        for bname, ls in (("jet_mass", "--"), ("sd_mass", "-.")):
            key = f"baseline_{bname}"
            if key in z:
                label = z["label"]
                sel = (label >= 1) if s == "combined" else (label == names0.index(s) + 1)
                from .metrics import auc as _auc

                b, sg = z[key][label == 0], z[key][sel]
                curves.append(
                    {
                        "bkg": b,
                        "sig": sg,
                        "label": f"{bname} (AUC {_auc(b, sg, warn=False):.3f})",
                        "ls": ls,
                        "color": "gray" if bname == "jet_mass" else "black",
                        "lw": 1.5,
                    }
                )
        fname = f"roc_{task}_{re.sub(r'[^A-Za-z0-9_-]', '_', s)}.png"
        bkg = section["groups"][0]["background"] if section["groups"] else "background"
        roc_figure(curves, out_dir / fname, f"{s} vs {bkg} ({task})", n_bkg)
        files[s] = fname
    return files


# ------------------------------------------------------------------------------------------------------------
# entry point
# ------------------------------------------------------------------------------------------------------------


def compare(
    run_dirs: Sequence[str | os.PathLike], out: str | os.PathLike = "report", plots: bool = True
) -> dict:
    """Write ``out/report.md``, ``out/report.json`` and ROC overlays for evaluated run directories.

    Returns the report dict (also in ``report.json``).
    """
    if not run_dirs:
        raise ValueError("compare: give at least one evaluated run directory")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [read_run(d) for d in run_dirs]
    groups = group_runs(runs)
    targets = runs[0]["metrics"].get("eps_b_targets") or [0.1, 0.01, 0.001]
    from .metrics import MIN_BKG_PASS

    report: dict[str, Any] = {
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "n_runs": len(runs),
        "eps_b_targets": targets,
        "min_bkg_pass": MIN_BKG_PASS,
        "std": "sample std over seeds (ddof=1) when n_seeds >= 2; else the run's statistical error "
        "(kind='stat')",
        "compression_denominator": "4 x n_particles",
        "tasks": {},
    }
    task_order = [t for t in ("standard", "inverse") if any(g["task"] == t for g in groups)]
    task_order += [t for t in dict.fromkeys(g["task"] for g in groups) if t not in task_order]
    baselines = summarize_baselines(groups, targets)
    for task in task_order:
        graw = [g for g in groups if g["task"] == task]
        section = {"groups": [summarize_group(g, targets) for g in graw], "baselines": baselines.get(task)}
        if plots:
            section["plots"] = roc_overlays(section, graw, out, task)
        report["tasks"][task] = section
    write_json(out / "report.json", report)
    (out / "report.md").write_text(render_markdown(json.loads((out / "report.json").read_text())))
    return report
