"""``lgae run``: config validation, the time budget, and the whole chain on tiny Pythia samples
(generate -> train -> evaluate -> compare) with the real generator, trainer and models."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from lgae._validate import ConfigError
from lgae.eval.pipeline import (
    generate_samples,
    load_pipeline_config,
    repo_root,
    run_pipeline,
    train_one,
    validate_pipeline_config,
)
from lgae.train.trainer import TimeBudget

CONFIGS = repo_root() / "configs"


def _tiny(tmp_path: Path, models=("lgae_mix.yaml", "vae.yaml"), inverse=("vae",)) -> dict:
    return {
        "work": str(tmp_path / "work"),
        "out": str(tmp_path / "report"),
        "seeds": [0],
        "device": "cpu",
        "generate": {
            "workers": 1,
            "mpi": False,
            "samples": {
                "qcd_train": {"process": "qcd", "n_jets": 80, "seed": 11},
                "qcd_test": {"process": "qcd", "n_jets": 60, "seed": 12},
                "top_test": {"process": "top", "n_jets": 60, "seed": 13},
                "w_test": {"process": "w", "n_jets": 60, "seed": 14},
                "top_train": {"process": "top", "n_jets": 60, "seed": 16},
            },
        },
        "models": [str(CONFIGS / m) for m in models],
        "data": {"generate": None, "cache": False},
        "trainer": {"epochs": 1, "batch_size": 32, "progress": False, "num_threads": 1},
        "evaluate": {
            "train": "qcd_train",
            "background": "qcd_test",
            "signals": ["top_test", "w_test"],
            "n_boot": 0,
        },
        "inverse": {
            "models": list(inverse),
            "train": "top_train",
            "background": "top_test",
            "signals": ["qcd_test"],
        },
    }


@pytest.mark.parametrize("full", [False, True])
def test_shipped_pipeline_configs_validate(full):
    cfg = load_pipeline_config(full=full)
    stems = [Path(m).stem for m in cfg["models"]]
    assert {"lgae_mix", "lgae_minmax", "vae", "gnnae_jl", "gnnae_pl", "cnnae"} <= set(stems)
    assert cfg["inverse"]["models"] and set(cfg["inverse"]["models"]) <= set(stems)
    assert cfg["evaluate"]["signals"] and cfg["evaluate"]["background"] in cfg["generate"]["samples"]
    if full:
        assert len(cfg["seeds"]) >= 5 and cfg["time_budget_s"] is None
    else:
        assert cfg["generate"]["mpi"] is False and cfg["time_budget_s"] > 0


def test_pipeline_config_errors(tmp_path):
    good = _tiny(tmp_path, models=("vae.yaml",))
    validate_pipeline_config(good)
    bad = json.loads(json.dumps(good))
    bad["trainr"] = {}
    with pytest.raises(ConfigError, match="did you mean 'trainer'"):
        validate_pipeline_config(bad)
    bad = json.loads(json.dumps(good))
    bad["evaluate"]["signals"] = ["top_tset"]
    with pytest.raises(ConfigError, match="top_tset"):
        validate_pipeline_config(bad)
    bad = json.loads(json.dumps(good))
    bad["generate"]["samples"]["qcd_test"]["n_jet"] = 5
    with pytest.raises(ConfigError, match="n_jets"):
        validate_pipeline_config(bad)
    bad = json.loads(json.dumps(good))
    bad["trainer"]["epoch"] = 3
    with pytest.raises(ConfigError, match="epochs"):
        validate_pipeline_config(bad)
    bad = json.loads(json.dumps(good))
    bad["inverse"]["models"] = ["cnnae"]
    with pytest.raises(ConfigError, match="inverse.models"):
        validate_pipeline_config(bad)
    bad = json.loads(json.dumps(good))
    bad["models"] = ["no_such_model.yaml"]
    with pytest.raises(ConfigError, match="not found"):
        validate_pipeline_config(bad)


def test_time_budget_callback():
    tr = SimpleNamespace(history=[{"epoch_time_s": 10.0}], train_time_s=55.0, stop_requested=False)
    TimeBudget(70)(1, tr)
    assert tr.stop_requested is False  # 55 + 10 <= 70: one more epoch fits
    tr.train_time_s = 61.0
    TimeBudget(70)(2, tr)
    assert tr.stop_requested is True
    tr.stop_requested = False
    TimeBudget(None)(3, tr)
    assert tr.stop_requested is False


def test_whole_chain_on_tiny_pythia_samples(tmp_path):
    """generate (~60 jets/class, MPI off) -> train 1 epoch -> evaluate -> inverse task -> compare."""
    cfg = validate_pipeline_config(_tiny(tmp_path))
    logs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 1-epoch models on 60 jets: below-chance AUCs are expected here
        report = run_pipeline(cfg, progress=False, log=logs.append)
    out = Path(cfg["out"])
    md = (out / "report.md").read_text()
    js = json.loads((out / "report.json").read_text())

    standard = {g["name"]: g for g in js["tasks"]["standard"]["groups"]}
    assert set(standard) == {"lgae_mix", "vae"}
    assert [g["name"] for g in js["tasks"]["inverse"]["groups"]] == ["vae_inverse"]
    for g in standard.values():
        assert g["signals"] == ["top", "w"] and g["background"] == "qcd"
        for key in ("top", "w", "combined"):
            m = g["metrics"][key]
            assert math.isfinite(m["auc"]["mean"]) and 0 <= m["auc"]["mean"] <= 1
            assert all(math.isfinite(e["mean"]) for e in m["eps_s"].values())
        assert g["n_params"] > 0 and g["train_time_s"] > 0 and g["latent_dim"] > 0
    inv = js["tasks"]["inverse"]["groups"][0]
    assert inv["background"] == "top" and inv["signals"] == ["qcd"]

    # the report's table: one row per model, finite numbers, the jet-mass baseline row
    combined = md.split("### all signals combined")[1].split("###")[0]
    rows = [r for r in combined.splitlines() if r.startswith("| ")][1:]  # without the header
    names = [re.match(r"\| \*+([^*]+)\*+", r).group(1) for r in rows]
    assert names[:2] == ["lgae_mix", "vae"] and "jet_mass" in names
    for r in rows:
        cells = [c.strip() for c in r.strip("|").split("|")]
        assert re.match(r"^\d\.\d+ ± \d\.\d+", cells[5]), r  # AUC column
    assert "Inverse task" in md
    assert (out / "roc_standard_combined.png").stat().st_size > 1000
    for run in report["pipeline"]["timings"]:
        assert (Path(run) / "metrics.json").is_file() and (Path(run) / "roc.png").is_file()

    # rerunning reuses the samples and the finished runs
    before = {p: p.stat().st_mtime_ns for p in (Path(cfg["work"]) / "data").glob("*.root")}
    logs.clear()
    generate_samples(cfg, Path(cfg["work"]) / "data", progress=False, log=logs.append)
    assert all("reused" in line for line in logs)
    assert {p: p.stat().st_mtime_ns for p in before} == before
    run_dir = Path(next(iter(report["pipeline"]["timings"])))
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    logs.clear()
    assert train_one(config, None, log=logs.append) == run_dir
    assert "reused" in logs[0]
