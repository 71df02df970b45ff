"""Every shipped model config trains through the shared trainer on real generated QCD jets."""

import csv
import math
from pathlib import Path

import pytest

from lgae.train import load_config, load_run, train

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

# Shipped config -> overrides that keep a default-suite run to a few seconds (same architecture).
CASES = {
    "vae": [],
    "gnnae_jl": [],
    "gnnae_pl": [],
    "cnnae": ["trainer.lr=3.0e-3"],
    "lgae_mix": [],
    "lgae_minmax": [],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_shipped_config_trains_on_generated_qcd(name, generated_jets, tmp_path, one_thread):
    overrides = [
        f"data.train={generated_jets['qcd']}",
        "data.generate=null",
        f"data.cache_dir={tmp_path / 'cache'}",
        "trainer.epochs=4",
        "trainer.batch_size=64",
        "trainer.progress=false",
        f"trainer.out={tmp_path / name}",
        *CASES[name],
    ]
    run_dir = Path(train(load_config(CONFIGS / f"{name}.yaml", overrides)))
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [float(r["val_loss"]) for r in rows]
    assert len(val) == 4 and all(math.isfinite(v) for v in val), val
    assert min(val[1:]) < val[0], f"{name}: validation loss did not decrease: {val}"
    for f in ("config.yaml", "metrics.csv", "run.json", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run_dir / f).is_file(), f
    model, cfg = load_run(run_dir)
    assert cfg["model"]["name"] == model.name
