"""``lgae discover``: the VAE trained by the shared trainer finds the intrinsic dimension of the toy datasets.

The default suite runs a small version (plane and circle, one seed, a few thousand events); the full study
(``configs/symmetry``, five datasets, five seeds) is marked slow.
"""

import argparse
import json

import numpy as np
import pytest
import torch

from lgae.data.toys import generator_variables, make_toy
from lgae.eval import symmetry, symmetry_cli
from lgae.eval.symmetry import discover, run_seed, summarise, write_summary

#: small and fast, but long enough (~3000 steps) for the decoder to learn the circle (see docs/symmetry.md)
SMALL = (
    "data.toy.n=4000",
    "trainer.epochs=30",
    "trainer.batch_size=32",
    "trainer.lr=3.0e-3",
    "model.beta=0.05",
)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_generator_variables_recover_the_generator_variables():
    x, meta = make_toy("circle", 500, 0, radius=3.0)
    v = generator_variables(x, meta)
    np.testing.assert_allclose(v["r (radius)"], 3.0, rtol=1e-9)
    x, meta = make_toy("ee_mumu", 20000, 0)
    v = generator_variables(x, meta)
    assert abs(np.mean(v["cos theta"] ** 2) - 0.4) < 0.01 and np.abs(v["phi"]).max() <= np.pi
    x, meta = make_toy("pp_dimuon", 2000, 0, generator="lo")
    v = generator_variables(x, meta)
    assert set(v) == {"m [GeV]", "Y", "cos theta*", "phi*"}
    assert 60 < v["m [GeV]"].min() and v["m [GeV]"].max() < 120 and np.abs(v["cos theta*"]).max() <= 1 + 1e-9


def test_every_shipped_config_validates_and_names_its_toy():
    from lgae.train import resolve_config

    names = sorted(p.stem for p in symmetry.config_dir().glob("*.yaml"))
    assert set(symmetry.DEFAULT_DATASETS) <= set(names)
    for name in names:
        cfg = resolve_config(symmetry.config_dir() / f"{name}.yaml", list(symmetry.QUICK_OVERRIDES))
        assert cfg["data"]["toy"]["name"] == name and cfg["model"]["name"] == "vae"
        assert cfg["data"]["train"] is None  # no jets from the shared base


def test_summary_files(tmp_path):
    def run(seed, n_local):
        return {
            "dataset": "circle",
            "seed": seed,
            "input_dim": 2,
            "latent_dim": 4,
            "beta": 0.01,
            "expected": 1,
            "dof": {"free": ["t"], "constraints": []},
            "generator": "analytic",
            "dropped": [],
            "kl": [2.0, 1.8, 0.0, 0.0],
            "spectrum": [1.4, 0.01, 0.0, 0.0],
            "n_relevant": 2,
            "n_local": n_local,
            "kl_threshold": 0.1,
            "local_threshold": 0.18,
            "_x": np.zeros(3),
        }

    s = summarise({"circle": [run(0, 1), run(1, 1), run(2, 2)]})
    assert s["circle"]["n_match"] == 2 and s["circle"]["n_local"] == [1, 1, 2]
    assert "_x" not in s["circle"]["runs"][0]
    md, js = write_summary(s, tmp_path, ["relevance_circle.png"], "lgae discover --datasets circle")
    text = md.read_text()
    assert "| circle | 2 | 4 | 0.01 | 2 2 2 | 1 1 2 | 1 | 2/3 |" in text
    assert json.loads(js.read_text())["datasets"]["circle"]["n_match"] == 2


def test_cli_smoke(tmp_path):
    parser = argparse.ArgumentParser()
    symmetry_cli.register(parser.add_subparsers())
    out = tmp_path / "d"
    args = parser.parse_args(
        [
            "discover",
            "--datasets",
            "plane",
            "--seeds",
            "0",
            "--out",
            str(out),
            "data.toy.n=600",
            "trainer.epochs=2",
        ]
    )
    assert args.func(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["datasets"]["plane"]["seeds"] == [0]
    assert "trainer.epochs=2" in summary["command"]
    for f in ("summary.md", "relevance_plane.png", "activation_map_plane.png", "activations_plane.png"):
        assert (out / f).is_file(), f
    assert (out / "runs" / "plane" / "seed0" / "config.yaml").is_file()  # trained by the shared trainer
    bad = parser.parse_args(["discover", "--datasets", "plane,nonesuch", "--out", str(out)])
    assert bad.func(bad) == 2


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("discover")
    return {ds: run_seed(ds, 0, out, overrides=SMALL) for ds in ("plane", "circle")}


def test_plane_is_two_dimensional(small_study):
    r = small_study["plane"]
    assert r["n_local"] == 2 and r["frac_at_n_local"] > 0.95
    assert r["n_relevant"] == 2  # two latent axes, the other two collapse
    assert r["kl"][2] < 0.02 and r["spectrum"][2] < 0.01


def test_circle_is_one_dimensional_locally_and_two_axes_globally(small_study):
    """The circle is encoded as a latent circle: two latent axes carry KL (no seam), one local direction."""
    c, p = small_study["circle"], small_study["plane"]
    assert c["n_local"] == 1 and c["frac_at_n_local"] > 0.95
    assert c["spectrum"][1] < 0.1 * p["spectrum"][1]  # the circle's second direction far below the plane's
    assert (
        c["n_relevant"] == 2 and c["kl"][1] > 0.5
    )  # the per-axis count sees the embedding, not the dimension


@pytest.mark.slow
def test_full_study_matches_the_expected_intrinsic_dimensions(tmp_path):
    """The shipped configs, five datasets, five seeds: the local dimension matches in >= 4 of 5 seeds."""
    summary = discover(
        symmetry.DEFAULT_DATASETS, symmetry.DEFAULT_SEEDS, tmp_path, plots=False, log=lambda *a: None
    )
    for ds, s in summary.items():
        assert s["n_match"] >= 4, (ds, s["n_local"])
    assert summary["circle"]["spectrum_mean"][1] < 0.05 * summary["plane"]["spectrum_mean"][1]
