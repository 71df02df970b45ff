"""``lgae compare``: grouping of seeds, mean +- std, baseline rows, the inverse-task section, ROC overlays."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest
from eval_helpers import IMAGE_MODEL, RECON_MODEL, make_run_dir
from eval_helpers import eval_main as main

from lgae.eval.evaluate import evaluate_run
from lgae.eval.metrics import InvertedScoreWarning
from lgae.eval.report import compare, group_runs, read_run


@pytest.fixture
def evaluated(tmp_path, samples, fake_prepare_jets):
    """Two seeds of the reconstruction model, one of the other model, one inverse-task run; all evaluated."""
    runs = []
    for seed in (0, 1):
        runs.append(
            make_run_dir(tmp_path / "runs" / "recon" / f"seed{seed}", RECON_MODEL, name="recon", seed=seed)
        )
    runs.append(make_run_dir(tmp_path / "runs" / "other", IMAGE_MODEL, name="other"))
    inv = make_run_dir(
        tmp_path / "runs" / "recon_inverse" / "seed0", RECON_MODEL, name="recon_inverse", task="inverse"
    )
    sig = [str(samples["top"]), str(samples["w"])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InvertedScoreWarning)
        for r in runs:
            evaluate_run(
                r, background=str(samples["qcd"]), signals=sig, n_boot=10, progress=False, plots=False
            )
        evaluate_run(
            inv,
            background=str(samples["top"]),
            signals=[str(samples["qcd"])],
            n_boot=0,
            progress=False,
            plots=False,
        )
    return [*runs, inv]


def test_compare_report(tmp_path, evaluated):
    out = tmp_path / "report"
    rep = compare([str(r) for r in evaluated], out)
    md = (out / "report.md").read_text()
    js = json.loads((out / "report.json").read_text())
    assert set(js["tasks"]) == {"standard", "inverse"}
    groups = {g["name"]: g for g in js["tasks"]["standard"]["groups"]}
    assert set(groups) == {"recon", "other"}
    g = groups["recon"]
    assert g["n_seeds"] == 2 and g["seeds"] == [0, 1]
    assert g["latent_dim"] == 3 and g["input_dim"] == 48 and g["compression"] == pytest.approx(3 / 48)
    assert g["train_time_s"] == pytest.approx(12.5) and g["train_jets_per_s"] == pytest.approx(1000.0)
    auc = g["metrics"]["combined"]["auc"]
    # mean and sample std over the two seeds (scores identical here: the model's default ignores its weights)
    assert auc["n"] == 2 and auc["kind"] == "seeds" and auc["std"] == pytest.approx(0.0, abs=1e-12)
    runs = [json.loads((r / "metrics.json").read_text()) for r in evaluated[:2]]
    assert auc["mean"] == pytest.approx(np.mean([m["combined"]["auc"] for m in runs]))
    assert groups["other"]["metrics"]["top"]["auc"]["kind"] == "stat"  # one seed: statistical error
    assert g["metrics"]["top"]["eps_s"]["0.001"]["resolved"] is False
    # baseline rows: the jet mass, per task
    assert "jet_mass" in js["tasks"]["standard"]["baselines"]["observables"]
    # markdown: one row per model plus the baselines in every table, numbers finite, the inverse section
    # present
    assert "Inverse task" in md and "recon_inverse" in md
    rows = [line for line in md.splitlines() if line.startswith("| **")]
    assert sum("**recon** " in r for r in rows) == 3  # combined, top, w tables
    assert sum("**other** " in r for r in rows) == 3
    assert "*jet_mass* (baseline" in md
    for r in rows:
        aucs = re.findall(r"\| (\d\.\d{3}) ±", r)
        assert aucs and all(0.0 <= float(a) <= 1.0 for a in aucs)
    assert "†" in md  # eps_b = 1e-3 is unresolved with 600 background jets
    # ROC overlays per signal and combined, per task
    for f in (
        "roc_standard_top.png",
        "roc_standard_w.png",
        "roc_standard_combined.png",
        "roc_inverse_qcd.png",
    ):
        assert (out / f).stat().st_size > 1000, f
    assert rep["n_runs"] == 4


def test_grouping_rules(tmp_path, evaluated):
    runs = [read_run(r) for r in evaluated]
    groups = group_runs(runs)
    assert [(g["task"], g["name"], len(g["runs"])) for g in groups] == [
        ("standard", "recon", 2),
        ("standard", "other", 1),
        ("inverse", "recon_inverse", 1),
    ]
    with pytest.raises(ValueError, match="share seed"):
        group_runs([runs[0], runs[0]])


def test_compare_needs_evaluated_runs(tmp_path):
    run = make_run_dir(tmp_path / "fresh", RECON_MODEL)
    with pytest.raises(FileNotFoundError, match="lgae evaluate"):
        compare([str(run)], tmp_path / "rep")
    assert main(["compare", str(run), "--out", str(tmp_path / "rep")]) == 2
